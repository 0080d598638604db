"""Where backups are stored: the target protocol and the local directory (S3 is in ``s3``).

Both lay a backup out as ``<id>/payload.bin`` then ``<id>/manifest.json``, and publish atomically:
the payload is written under a temporary name (local) or as a multipart upload that only becomes an
object when completed (S3), and the manifest goes last. A run killed at any moment leaves at most a
payload without a manifest, which ``complete_ids`` never lists and ``prune`` removes once it is
older than the grace period. Deletion removes the manifest first, for the same reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final, Protocol

from bastion.backup.errors import BackupNotFound, BackupTargetUnavailable
from bastion.backup.manifest import BACKUP_ID_PATTERN, MAX_MANIFEST_BYTES
from bastion.backup.stream import Readable

PAYLOAD: Final = "payload.bin"
MANIFEST: Final = "manifest.json"
PARTIAL_SUFFIX: Final = ".partial"
DIRECTORY_MODE: Final = 0o700
FILE_MODE: Final = 0o600


@dataclass(frozen=True, slots=True)
class Leftover:
    """A backup without a manifest: interrupted, or still being written by another process."""

    backup_id: str
    modified_at: datetime


class BackupTarget(Protocol):
    """Storage for backups. Implementations: LocalTarget, S3Target."""

    @property
    def description(self) -> str: ...

    def write_payload(self, backup_id: str) -> PayloadUpload:
        """Start writing a payload; nothing is visible as a backup until its manifest is."""
        ...

    def publish_manifest(self, backup_id: str, manifest: bytes) -> None: ...

    def read_manifest(self, backup_id: str) -> bytes:
        """BackupNotFound if there is no (complete) backup of that id."""
        ...

    def read_payload(self, backup_id: str) -> AbstractContextManager[Readable]: ...

    def complete_ids(self) -> list[str]:
        """Ids of backups that have a manifest (not yet verified), oldest first."""
        ...

    def leftovers(self) -> list[Leftover]: ...

    def delete(self, backup_id: str) -> None: ...


class PayloadUpload(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def commit(self) -> None:
        """Make the payload durable under its final name (still no manifest)."""
        ...

    def abort(self) -> None: ...


def checked_id(backup_id: str) -> str:
    # Ids become paths and object keys: anything else could escape the target's directory.
    if not BACKUP_ID_PATTERN.fullmatch(backup_id):
        raise BackupNotFound(f"{backup_id!r} is not a backup id")
    return backup_id


# ----------------------------------------------------------------------------- local
class _LocalUpload:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._partial = directory / (PAYLOAD + PARTIAL_SUFFIX)
        self._file: IO[bytes] = open(self._partial, "wb")  # noqa: SIM115 - closed in commit/abort
        os.chmod(self._partial, FILE_MODE)

    def write(self, data: bytes) -> object:
        return self._file.write(data)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._partial, self._directory / PAYLOAD)
        _fsync_directory(self._directory)

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


class LocalTarget:
    """Backups in a directory (0700), one sub-directory per backup."""

    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def description(self) -> str:
        return f"directory {self._root}"

    def _dir(self, backup_id: str) -> Path:
        return self._root / checked_id(backup_id)

    def write_payload(self, backup_id: str) -> PayloadUpload:
        try:
            self._root.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
            directory = self._dir(backup_id)
            directory.mkdir(mode=DIRECTORY_MODE)
            return _LocalUpload(directory)
        except OSError as exc:
            raise BackupTargetUnavailable(f"cannot write to {self._root}: {exc}") from None

    def publish_manifest(self, backup_id: str, manifest: bytes) -> None:
        directory = self._dir(backup_id)
        partial = directory / (MANIFEST + PARTIAL_SUFFIX)
        try:
            with open(partial, "wb") as file:
                file.write(manifest)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(partial, FILE_MODE)
            os.replace(partial, directory / MANIFEST)
            _fsync_directory(directory)
        except OSError as exc:
            raise BackupTargetUnavailable(f"cannot write to {directory}: {exc}") from None

    def read_manifest(self, backup_id: str) -> bytes:
        path = self._dir(backup_id) / MANIFEST
        try:
            with open(path, "rb") as file:
                return file.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            raise BackupNotFound(f"no complete backup {backup_id} in {self.description}") from None
        except OSError as exc:
            raise BackupTargetUnavailable(f"cannot read {path}: {exc}") from None

    @contextmanager
    def read_payload(self, backup_id: str) -> Iterator[Readable]:
        path = self._dir(backup_id) / PAYLOAD
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            # A manifest without its payload reads as an empty payload: chunk 0 is "truncated".
            yield EmptyPayload()
            return
        except OSError as exc:
            raise BackupTargetUnavailable(f"cannot read {path}: {exc}") from None
        with file:
            yield file

    def _entries(self) -> list[Path]:
        if not self._root.is_dir():
            return []
        return sorted(
            p for p in self._root.iterdir() if p.is_dir() and BACKUP_ID_PATTERN.fullmatch(p.name)
        )

    def complete_ids(self) -> list[str]:
        return [p.name for p in self._entries() if (p / MANIFEST).is_file()]

    def leftovers(self) -> list[Leftover]:
        found = []
        for path in self._entries():
            if (path / MANIFEST).is_file():
                continue
            newest = max((f.stat().st_mtime for f in path.iterdir()), default=path.stat().st_mtime)
            found.append(Leftover(path.name, datetime.fromtimestamp(newest, UTC)))
        return found

    def delete(self, backup_id: str) -> None:
        directory = self._dir(backup_id)
        (directory / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)


class EmptyPayload:
    def read(self, size: int = -1, /) -> bytes:
        del size
        return b""


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
