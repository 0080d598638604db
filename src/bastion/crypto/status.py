"""What an operator needs to see of the keyring: versions, counters, unfinished work.

Read-only and free of key material (no wrapped key, no public key, no plaintext): versions, their
status, encryption counters, which master key wraps what, and re-encryption progress. Tenant ids
appear, never tenant data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.crypto import repository as repo
from bastion.crypto.models import (
    STATUS_ACTIVE,
    STATUS_SUPERSEDED,
    SYSTEM_JOB_OWNER,
    ReencryptionJob,
    SystemKey,
    TenantKey,
)
from bastion.crypto.types import KeyVersion
from bastion.kernel.clock import as_utc

# AES-GCM with random 96-bit nonces (NIST SP 800-38D, 8.3): a key is rotated before this many.
ENCRYPTION_LIMIT: Final = 2**32
SYSTEM_DATA_OWNER: Final = "system:data"
MAX_STATUS_PAGE: Final = 200


@dataclass(frozen=True, slots=True)
class ReencryptionStatus:
    """One re-encryption pass of one tenant over one store of sealed values."""

    target: str
    to_version: int
    rows_done: int
    finished: bool


@dataclass(frozen=True, slots=True)
class TenantKeyStatus:
    tenant: str
    versions: tuple[KeyVersion, ...]
    reencryption: tuple[ReencryptionStatus, ...]

    @property
    def active_version(self) -> int | None:
        return next((v.version for v in self.versions if v.status == STATUS_ACTIVE), None)

    @property
    def pending_versions(self) -> tuple[int, ...]:
        """Superseded versions: they still decrypt, await re-encryption, then retirement."""
        return tuple(v.version for v in self.versions if v.status == STATUS_SUPERSEDED)


@dataclass(frozen=True, slots=True)
class KeyringStatus:
    """The whole keyring at a glance (aggregates only; per-tenant detail is paged)."""

    master_key_id: str
    # Keys still wrapped by another master key: non-zero means a KEK rotation did not finish.
    keys_under_other_master_keys: int
    system_keys: tuple[KeyVersion, ...]
    tenants_with_keys: int
    superseded_tenant_versions: int
    unfinished_reencryptions: int
    # The most-used active key's reserved encryptions (tenant or system), against the limit.
    most_encryptions_reserved: int
    encryption_limit: int = ENCRYPTION_LIMIT
    # Passes over the system-sealed columns (one per column) after a system data-key rotation.
    system_reencryption: tuple[ReencryptionStatus, ...] = ()

    @property
    def pending_system_versions(self) -> tuple[int, ...]:
        """Superseded system data-key versions: they decrypt, await re-encryption, retirement."""
        return tuple(
            key.version
            for key in self.system_keys
            if key.owner == SYSTEM_DATA_OWNER and key.status == STATUS_SUPERSEDED
        )


def _version(owner: str, row: TenantKey | SystemKey) -> KeyVersion:
    return KeyVersion(
        owner=owner,
        version=row.version,
        status=row.status,
        encryptions_reserved=row.encryptions,
        created_at=as_utc(row.created_at),
        superseded_at=as_utc(row.superseded_at) if row.superseded_at else None,
        retired_at=as_utc(row.retired_at) if row.retired_at else None,
    )


def keyring_status(session: Session, *, master_key_id: str) -> KeyringStatus:
    """Aggregates over every key; ``master_key_id`` is the configured provider's key id."""
    system = session.scalars(select(SystemKey).order_by(SystemKey.name, SystemKey.version))
    most = 0
    for model in (TenantKey, SystemKey):
        used = session.scalar(
            select(func.max(model.encryptions)).where(model.status == STATUS_ACTIVE)
        )
        most = max(most, int(used or 0))
    return KeyringStatus(
        master_key_id=master_key_id,
        keys_under_other_master_keys=repo.count_not_wrapped_by(session, master_key_id),
        system_keys=tuple(_version(f"system:{row.name}", row) for row in system),
        tenants_with_keys=int(
            session.scalar(select(func.count(func.distinct(TenantKey.tenant_id)))) or 0
        ),
        superseded_tenant_versions=int(
            session.scalar(
                select(func.count())
                .select_from(TenantKey)
                .where(TenantKey.status == STATUS_SUPERSEDED)
            )
            or 0
        ),
        unfinished_reencryptions=int(
            session.scalar(
                select(func.count())
                .select_from(ReencryptionJob)
                .where(ReencryptionJob.finished.is_(False))
            )
            or 0
        ),
        most_encryptions_reserved=most,
        system_reencryption=tuple(
            ReencryptionStatus(job.target, job.to_version, job.rows_done, bool(job.finished))
            for job in session.scalars(
                select(ReencryptionJob)
                .where(ReencryptionJob.tenant_id == SYSTEM_JOB_OWNER)
                .order_by(ReencryptionJob.target)
            )
        ),
    )


def tenant_statuses(session: Session, *, after: str | None, limit: int) -> list[TenantKeyStatus]:
    """Tenants with keys, ordered by id, after ``after``; ``limit`` is clamped to 1..200."""
    size = max(1, min(limit, MAX_STATUS_PAGE))
    ids = select(TenantKey.tenant_id).distinct().order_by(TenantKey.tenant_id).limit(size)
    if after is not None:
        ids = ids.where(TenantKey.tenant_id > after)
    tenants: Sequence[str] = list(session.scalars(ids))
    if not tenants:
        return []
    versions: dict[str, list[KeyVersion]] = {tenant: [] for tenant in tenants}
    for row in session.scalars(
        select(TenantKey)
        .where(TenantKey.tenant_id.in_(tenants))
        .order_by(TenantKey.tenant_id, TenantKey.version)
    ):
        versions[row.tenant_id].append(_version(row.tenant_id, row))
    jobs: dict[str, list[ReencryptionStatus]] = {tenant: [] for tenant in tenants}
    for job in session.scalars(
        select(ReencryptionJob)
        .where(ReencryptionJob.tenant_id.in_(tenants))
        .order_by(ReencryptionJob.tenant_id, ReencryptionJob.target)
    ):
        jobs[job.tenant_id].append(
            ReencryptionStatus(job.target, job.to_version, job.rows_done, bool(job.finished))
        )
    return [
        TenantKeyStatus(tenant, tuple(versions[tenant]), tuple(jobs[tenant])) for tenant in tenants
    ]
