"""Frozen value types the keyring hands out (never ORM rows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One version of a tenant's (or the system's) data key, without any key material."""

    owner: str
    version: int
    status: str
    encryptions_reserved: int
    created_at: datetime
    superseded_at: datetime | None
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class KekRotationReport:
    old_key_id: str
    new_key_id: str
    rewrapped: int
    total: int


@dataclass(frozen=True, slots=True)
class ReencryptionReport:
    target: str
    to_version: int
    rows_scanned: int
    rows_reencrypted: int
    rows_done_total: int
    finished: bool


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """An erasure-ledger entry: replayed by every restore so old backups cannot revive a tenant."""

    tenant: str
    erased_at: datetime
    versions_destroyed: int


class KeyEventRecorder(Protocol):
    """Records a key-management action inside the very transaction that makes the change.

    The audit log implements it (wired in ``bootstrap``); crypto never imports audit. If recording
    raises, the key change rolls back with it (DESIGN invariant 2).
    """

    def __call__(
        self,
        session: Session,
        *,
        action: str,
        tenant: str | None,
        details: Mapping[str, str | int],
    ) -> None: ...
