"""Backup errors::

BackupError (AppError)
├── BackupNotFound (NotFound)            no complete backup with that id on the target
├── BackupCorrupted                      a chunk, the payload or the restored data fails its check;
│   │                                    the message names the chunk (or the part) that failed
│   └── ManifestSignatureInvalid         the manifest is malformed or its signature does not verify
├── BackupKeyMismatch                    the configured master key did not wrap this backup's key
├── BackupToolMissing (Unavailable)      pg_dump / pg_restore for the server's major version absent
├── SnapshotFailed                       the database could not be snapshotted (pg_dump failed...)
├── RestoreRefused (Conflict)            the restore target is not empty and --force was not given
├── BackupTargetUnavailable (Unavailable)  the local directory or S3 bucket cannot be used
└── InstallationUnavailable (Unavailable)  this installation's own database cannot be read

None of them carries key material or database contents; messages name backups, chunks and paths.
"""

from __future__ import annotations

from bastion.errors import AppError, Conflict, NotFound, Unavailable


class BackupError(AppError):
    code = "backup.error"
    public_message = "The backup operation failed."


class BackupNotFound(BackupError, NotFound):
    code = "backup.not_found"
    public_message = "No such backup."


class BackupCorrupted(BackupError):
    code = "backup.corrupted"
    public_message = "The backup failed its integrity check."


class ManifestSignatureInvalid(BackupCorrupted):
    code = "backup.manifest_signature_invalid"
    public_message = "The backup manifest is not validly signed."


class BackupKeyMismatch(BackupError):
    code = "backup.key_mismatch"
    public_message = "The configured master key cannot open this backup."


class BackupToolMissing(BackupError, Unavailable):
    code = "backup.tool_missing"
    public_message = "A database tool the backup needs is not installed."


class SnapshotFailed(BackupError):
    code = "backup.snapshot_failed"
    public_message = "The database could not be snapshotted."


class RestoreRefused(BackupError, Conflict):
    code = "backup.restore_refused"
    public_message = "The restore target is not empty."


class BackupTargetUnavailable(BackupError, Unavailable):
    code = "backup.target_unavailable"
    public_message = "The backup storage cannot be used."


class InstallationUnavailable(BackupError, Unavailable):
    code = "backup.installation_unavailable"
    public_message = "This installation's database cannot be read."
