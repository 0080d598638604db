"""The ``local`` master-key provider: 256 bits in a file only the service user can read.

A group- or world-readable key file is refused: a key another account can read protects nothing.
For containers the key can come base64-encoded from settings instead of a file.

Wrapping is AES-256-GCM under the master key (KEK) with a random 96-bit nonce and the caller's
``context`` as associated data. Blob layout: ``0x01 | nonce (12) | ciphertext + tag (16)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto.errors import KeyFileError, KeyUnwrapError

KEY_BYTES = 32
KEY_FILE_MODE = 0o600
NONCE_BYTES = 12
TAG_BYTES = 16
WRAP_FORMAT = 0x01
# The key id is a PRF output of the key, never the key: 64 bits tell keys apart in messages and in
# the keyring's ``kek_id`` column without helping anyone guess the key.
KEY_ID_LABEL = b"bastion:kek-id:v1"
KEY_ID_HEX_CHARS = 16


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


def replace_key_file(target: Path, *, source: Path) -> None:
    """Atomically replace ``target`` with the bytes of ``source`` (mode 0600, fsynced).

    Used once a KEK rotation has rewrapped every key: a crash leaves either the old or the new
    file in place, never a torn one.
    """
    data = source.read_bytes()
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _decode(text: bytes, *, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{source} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{source} must hold {KEY_BYTES} bytes, found {len(key)}")
    return key


class LocalKeyProvider:
    """A ``KeyProvider`` over a key file (checked for permissions) or a base64 value.

    The key is read on first use and kept in memory for the life of the object; ``check()``
    re-reads it so that readiness notices a file that became unreadable or too open.
    """

    def __init__(self, *, key_file: Path, key_base64: str | None = None) -> None:
        self._key_file = key_file
        self._key_base64 = key_base64
        self._loaded: tuple[AESGCM, str] | None = None

    @property
    def description(self) -> str:
        if self._key_base64:
            return "environment (BASTION_CRYPTO__KEY_BASE64)"
        return str(self._key_file)

    @property
    def key_id(self) -> str:
        """``local:`` and 16 hex digits of HMAC-SHA256(key, label); raises KeyFileError."""
        return self._state()[1]

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

    def check(self) -> None:
        """Raise KeyFileError if the key cannot be loaded right now (missing, too open, bad)."""
        self.load()

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM-encrypt ``key`` under the master key, ``context`` as associated data."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return bytes([WRAP_FORMAT]) + nonce + self._state()[0].encrypt(nonce, key, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Inverse of ``wrap``; KeyUnwrapError for a wrong key, a tampered blob or context."""
        if len(wrapped) < 1 + NONCE_BYTES + TAG_BYTES or wrapped[0] != WRAP_FORMAT:
            raise KeyUnwrapError(f"wrapped key is malformed (master key {self.description})")
        nonce = wrapped[1 : 1 + NONCE_BYTES]
        try:
            return self._state()[0].decrypt(nonce, wrapped[1 + NONCE_BYTES :], context)
        except InvalidTag:
            raise KeyUnwrapError(
                f"wrapped key does not authenticate under master key {self.description}"
            ) from None

    def _state(self) -> tuple[AESGCM, str]:
        if self._loaded is None:
            key = self.load()
            digest = hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()
            self._loaded = (AESGCM(key), f"local:{digest[:KEY_ID_HEX_CHARS]}")
        return self._loaded
