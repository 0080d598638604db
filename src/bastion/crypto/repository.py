"""Queries over the keyring tables. Every tenant-key query carries the tenant predicate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from bastion.crypto.envelope import KIND_SYSTEM, KIND_TENANT
from bastion.crypto.models import (
    STATUS_ACTIVE,
    STATUS_RETIRED,
    STATUS_SUPERSEDED,
    Erasure,
    ReencryptionJob,
    SystemKey,
    TenantKey,
)
from bastion.kernel.ids import new_id

KeyRow = TenantKey | SystemKey


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose key: a tenant (``kind`` KIND_TENANT, ``name`` the tenant id) or one of Bastion's own
    keys (``kind`` KIND_SYSTEM, ``name`` "data", "mac" or "signing")."""

    kind: int
    name: str

    @property
    def scope(self) -> str:
        return "tenant" if self.kind == KIND_TENANT else "system"

    @property
    def label(self) -> str:
        return f"tenant {self.name}" if self.kind == KIND_TENANT else f"system key {self.name!r}"


def tenant_owner(tenant: str) -> Owner:
    return Owner(KIND_TENANT, tenant)


def system_owner(name: str) -> Owner:
    return Owner(KIND_SYSTEM, name)


def _model(owner: Owner) -> type[TenantKey] | type[SystemKey]:
    return TenantKey if owner.kind == KIND_TENANT else SystemKey


def _is_owner(owner: Owner) -> ColumnElement[bool]:
    if owner.kind == KIND_TENANT:
        return TenantKey.tenant_id == owner.name
    return SystemKey.name == owner.name


def key_rows(session: Session, owner: Owner) -> list[KeyRow]:
    model = _model(owner)
    return list(session.scalars(select(model).where(_is_owner(owner)).order_by(model.version)))


def key_row(session: Session, owner: Owner, version: int) -> KeyRow | None:
    model = _model(owner)
    query = select(model).where(_is_owner(owner), model.version == version)
    return cast(KeyRow | None, session.scalar(query))


def active_row(session: Session, owner: Owner, *, for_update: bool = False) -> KeyRow | None:
    model = _model(owner)
    query = select(model).where(_is_owner(owner), model.status == STATUS_ACTIVE)
    if for_update:
        # PostgreSQL: serialises concurrent rotations of one owner; SQLite ignores it (the
        # database-wide write lock already serialises writers).
        query = query.with_for_update()
    return cast(KeyRow | None, session.scalar(query))


def add_key(
    session: Session,
    owner: Owner,
    *,
    version: int,
    wrapped_key: bytes,
    kek_id: str,
    now: datetime,
    wrapped_index_key: bytes | None = None,
    public_key: bytes | None = None,
) -> KeyRow:
    common = {
        "version": version,
        "status": STATUS_ACTIVE,
        "wrapped_key": wrapped_key,
        "kek_id": kek_id,
        "encryptions": 0,
        "created_at": now,
    }
    row: KeyRow
    if owner.kind == KIND_TENANT:
        row = TenantKey(tenant_id=owner.name, wrapped_index_key=wrapped_index_key, **common)
    else:
        row = SystemKey(name=owner.name, public_key=public_key, **common)
    session.add(row)
    session.flush()
    return row


def supersede(session: Session, row: KeyRow, *, now: datetime) -> None:
    row.status = STATUS_SUPERSEDED
    row.superseded_at = now
    session.flush()


def retire(session: Session, row: KeyRow, *, now: datetime) -> None:
    row.status = STATUS_RETIRED
    row.wrapped_key = None
    if isinstance(row, TenantKey):
        row.wrapped_index_key = None  # the active version carries its own copy
    row.retired_at = now
    session.flush()


def reserve_encryptions(session: Session, owner: Owner, count: int) -> tuple[int, int] | None:
    """Add ``count`` to the active version's persisted counter in one atomic statement (no lost
    update across processes, and it takes the write lock first, so SQLite never has to upgrade a
    read lock); (version, new total), or None if the owner has no active version.

    With ``count`` 0 it is the way to lock the active row before changing it."""
    model = _model(owner)
    statement = (
        update(model)
        .where(_is_owner(owner), model.status == STATUS_ACTIVE)
        .values(encryptions=model.encryptions + count)
        .returning(model.version, model.encryptions)
        .execution_options(synchronize_session=False)
    )
    found = session.execute(statement).one_or_none()
    return None if found is None else (int(found[0]), int(found[1]))


def rows_not_wrapped_by(
    session: Session, model: type[TenantKey] | type[SystemKey], kek_id: str, *, limit: int
) -> Sequence[KeyRow]:
    """Rows still holding key material that ``kek_id`` did not wrap, in primary-key order."""
    order = (
        (TenantKey.tenant_id, TenantKey.version)
        if model is TenantKey
        else (SystemKey.name, SystemKey.version)
    )
    query = (
        select(model)
        .where(model.kek_id != kek_id, model.wrapped_key.is_not(None))
        .order_by(*order)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_not_wrapped_by(session: Session, kek_id: str) -> int:
    total = 0
    for model in (TenantKey, SystemKey):
        query = select(func.count()).where(model.kek_id != kek_id, model.wrapped_key.is_not(None))
        total += session.scalar(query.select_from(model)) or 0
    return total


def kek_ids_in_use(session: Session) -> set[str]:
    found: set[str] = set()
    for model in (TenantKey, SystemKey):
        query = select(model.kek_id).where(model.wrapped_key.is_not(None)).distinct()
        found.update(session.scalars(query))
    return found


def is_erased(session: Session, tenant: str) -> bool:
    return session.scalar(select(Erasure.id).where(Erasure.tenant_id == tenant)) is not None


def erasure(session: Session, tenant: str) -> Erasure | None:
    return session.scalar(select(Erasure).where(Erasure.tenant_id == tenant))


def erasures(session: Session) -> list[Erasure]:
    return list(session.scalars(select(Erasure).order_by(Erasure.erased_at, Erasure.id)))


def destroy_tenant_keys(session: Session, tenant: str, *, now: datetime) -> int:
    """Overwrite then delete every key row of ``tenant``; record the erasure. Returns versions."""
    # Overwrite first so that the deleted row images (SQLite free pages with secure_delete,
    # PostgreSQL dead tuples until vacuum) hold no wrapped key material.
    owner_rows = TenantKey.tenant_id == tenant
    session.execute(
        update(TenantKey).where(owner_rows).values(wrapped_key=None, wrapped_index_key=None)
    )
    versions = session.scalar(select(func.count()).select_from(TenantKey).where(owner_rows)) or 0
    session.execute(delete(TenantKey).where(owner_rows))
    session.execute(delete(ReencryptionJob).where(ReencryptionJob.tenant_id == tenant))
    session.add(Erasure(id=new_id(), tenant_id=tenant, erased_at=now, versions_destroyed=versions))
    session.flush()
    return versions


def job(session: Session, tenant: str, target: str) -> ReencryptionJob | None:
    return session.get(ReencryptionJob, (tenant, target))


def running_jobs(session: Session, tenant: str) -> list[ReencryptionJob]:
    query = select(ReencryptionJob).where(
        ReencryptionJob.tenant_id == tenant, ReencryptionJob.finished.is_(False)
    )
    return list(session.scalars(query))
