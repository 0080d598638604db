"""Backups: consistent snapshots, zstd + AES-256-GCM in chunks, signed manifests, storage targets,
verification, restore (with erasure-ledger replay), restore drills and retention.

Owns the ``backup_drills`` table and the backup format (docs/backups.md). Never holds a backup key
in the clear outside ``bastion.crypto`` (it gets sealers and openers, not keys), never lists a
backup whose signed manifest is missing or invalid as good, and never restores into a non-empty
database unless forced.
"""

from bastion.backup.drill import run_drill
from bastion.backup.errors import (
    BackupCorrupted,
    BackupError,
    BackupKeyMismatch,
    BackupNotFound,
    BackupTargetUnavailable,
    BackupToolMissing,
    InstallationUnavailable,
    ManifestSignatureInvalid,
    RestoreRefused,
    SnapshotFailed,
)
from bastion.backup.jobs import DailyReport, run_daily_backup
from bastion.backup.s3 import S3Target, s3_client
from bastion.backup.service import BackupService
from bastion.backup.targets import BackupTarget, LocalTarget
from bastion.backup.types import (
    BackupSummary,
    CreateReport,
    DrillResult,
    Freshness,
    Listing,
    Progress,
    PruneReport,
    RestoreReport,
)

__all__ = [
    "BackupCorrupted",
    "BackupError",
    "BackupKeyMismatch",
    "BackupNotFound",
    "BackupService",
    "BackupSummary",
    "BackupTarget",
    "BackupTargetUnavailable",
    "BackupToolMissing",
    "CreateReport",
    "DailyReport",
    "DrillResult",
    "Freshness",
    "InstallationUnavailable",
    "Listing",
    "LocalTarget",
    "ManifestSignatureInvalid",
    "Progress",
    "PruneReport",
    "RestoreRefused",
    "RestoreReport",
    "S3Target",
    "SnapshotFailed",
    "run_daily_backup",
    "run_drill",
    "s3_client",
]
