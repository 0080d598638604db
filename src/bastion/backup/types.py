"""Frozen value types the backup service hands out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bastion.backup.manifest import Backend, Manifest

Progress = Callable[[str, int, int | None], None]
"""``(phase, bytes done, bytes total or None)``; phases: snapshot, upload, verify, restore."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """A complete backup whose manifest signature verified."""

    backup_id: str
    created_at: datetime
    backend: Backend
    schema_revision: str | None
    plaintext_bytes: int
    payload_bytes: int
    chunks: int

    @classmethod
    def of(cls, manifest: Manifest) -> BackupSummary:
        return cls(
            backup_id=manifest.backup_id,
            created_at=manifest.created_at,
            backend=manifest.backend,
            schema_revision=manifest.schema_revision,
            plaintext_bytes=manifest.plaintext_bytes,
            payload_bytes=manifest.payload_bytes,
            chunks=len(manifest.chunks),
        )


@dataclass(frozen=True, slots=True)
class Listing:
    """Good backups (oldest first) and the ids whose manifest failed, with the reason."""

    good: tuple[BackupSummary, ...]
    bad: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateReport:
    backup: BackupSummary
    target: str
    duration_seconds: float
    compressed_bytes: int


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore put back, and what it checked."""

    backup: BackupSummary
    destination: str
    restored_bytes: int
    tables: Mapping[str, int]
    erasures_replayed: int
    chains_verified: int
    duration_seconds: float

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass(frozen=True, slots=True)
class PruneReport:
    kept: tuple[str, ...]
    deleted: tuple[str, ...]
    leftovers_deleted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DrillResult:
    """One restore drill (also what ``backup drill --last`` shows)."""

    drill_id: str
    backup_id: str | None
    started_at: datetime
    duration_seconds: float
    recovery_point: datetime | None
    ok: bool
    detail: str | None
    restored_bytes: int
    tables: int
    rows: int


@dataclass(frozen=True, slots=True)
class Freshness:
    """Age of the newest good backup; ``stale`` when it is older than the alert threshold."""

    newest: BackupSummary | None
    age_hours: float | None
    threshold_hours: int

    @property
    def stale(self) -> bool:
        return self.age_hours is None or self.age_hours > self.threshold_hours
