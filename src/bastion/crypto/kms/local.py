"""The ``local`` master-key provider: 256 bits in a file only the service user can read.

A group- or world-readable key file is refused: a key another account can read protects nothing.
For containers the key can come base64-encoded from settings instead of a file.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from bastion.crypto.errors import KeyFileError

KEY_BYTES = 32
KEY_FILE_MODE = 0o600


def create_key_file(path: Path) -> bool:
    """Write a fresh random key to ``path`` with mode 0600; never overwrites. True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _decode(text: bytes, *, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{source} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{source} must hold {KEY_BYTES} bytes, found {len(key)}")
    return key


class LocalKeyProvider:
    """Loads the master key from a file (checked for permissions) or from a base64 value."""

    def __init__(self, *, key_file: Path, key_base64: str | None = None) -> None:
        self._key_file = key_file
        self._key_base64 = key_base64

    @property
    def description(self) -> str:
        return "environment (BASTION_CRYPTO__KEY_BASE64)" if self._key_base64 else str(
            self._key_file
        )

    def load(self) -> bytes:
        """The raw master key, or KeyFileError saying exactly what is wrong."""
        if self._key_base64 is not None:
            return _decode(self._key_base64.encode(), source="BASTION_CRYPTO__KEY_BASE64")
        path = self._key_file
        try:
            info = path.stat()
        except FileNotFoundError:
            raise KeyFileError(
                f"master key file {path} does not exist; run `bastion init` to create it"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"master key file {path} is not a regular file")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"master key file {path} is readable by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
            )
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"master key file {path} cannot be read: {exc.strerror}") from None
        return _decode(text, source=f"master key file {path}")
