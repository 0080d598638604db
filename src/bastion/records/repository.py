"""Queries over the records tables. Every query names its tenant.

Rows never leave this module and the service; callers get ``bastion.records.types`` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, cast

from sqlalchemy import Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from bastion.records.models import CollectionRow, RecordIndexRow, RecordRow


def collection(session: Session, tenant_id: str, name: str) -> CollectionRow | None:
    return session.scalars(
        select(CollectionRow).where(
            CollectionRow.tenant_id == tenant_id, CollectionRow.name == name
        )
    ).one_or_none()


_COLLECTION_DEFINITION: Final = select(
    CollectionRow.__table__.c.id,
    CollectionRow.__table__.c.json_schema,
    CollectionRow.__table__.c.indexed_fields,
    CollectionRow.__table__.c.version,
).where(
    CollectionRow.__table__.c.tenant_id == bindparam("tenant_id"),
    CollectionRow.__table__.c.name == bindparam("name"),
)


def collection_definition(
    session: Session, tenant_id: str, name: str
) -> Row[str, str | None, str, int] | None:
    """What a record write needs of its collection (``id``, ``json_schema``,
    ``indexed_fields``, ``version``) as one plain row: the create path's lookup, with no ORM
    entity built (its statement is built once)."""
    return session.execute(
        _COLLECTION_DEFINITION, {"tenant_id": tenant_id, "name": name}
    ).one_or_none()


def collections(
    session: Session, tenant_id: str, *, after: str | None, limit: int
) -> Sequence[CollectionRow]:
    statement = select(CollectionRow).where(CollectionRow.tenant_id == tenant_id)
    if after is not None:
        statement = statement.where(CollectionRow.name > after)
    return session.scalars(statement.order_by(CollectionRow.name).limit(limit)).all()


def live_record(
    session: Session, tenant_id: str, collection_id: str, record_id: str, *, fresh: bool = False
) -> RecordRow | None:
    """A live record by (tenant, collection, id). ``fresh`` overwrites a row this session
    already holds with what is stored now (a write retrying after losing a race)."""
    statement = select(RecordRow).where(
        RecordRow.id == record_id,
        RecordRow.tenant_id == tenant_id,
        RecordRow.collection_id == collection_id,
        RecordRow.deleted_at.is_(None),
    )
    if fresh:
        statement = statement.execution_options(populate_existing=True)
    return session.scalars(statement).one_or_none()


# The read path's statement, built once: constructing a SQLAlchemy expression per request cost
# more than running it (the GET of a record is benchmarked against a bare app). Plain columns,
# no ORM entity: the row is opened and dropped, never changed.
_RECORDS = RecordRow.__table__
_COLLECTIONS = CollectionRow.__table__
_READ_ONE: Final = (
    select(
        _RECORDS.c.id,
        _RECORDS.c.collection_id,
        _RECORDS.c.sealed,
        _RECORDS.c.version,
        _RECORDS.c.created_at,
        _RECORDS.c.updated_at,
        _COLLECTIONS.c.audit_reads,
    )
    .select_from(_RECORDS.join(_COLLECTIONS, _COLLECTIONS.c.id == _RECORDS.c.collection_id))
    .where(
        _RECORDS.c.id == bindparam("record_id"),
        _RECORDS.c.tenant_id == bindparam("tenant_id"),
        _RECORDS.c.deleted_at.is_(None),
        _COLLECTIONS.c.tenant_id == bindparam("tenant_id"),
        _COLLECTIONS.c.name == bindparam("collection"),
    )
)


def live_record_with_collection(
    session: Session, tenant_id: str, collection: str, record_id: str
) -> Row[str, str, bytes, int, datetime, datetime, bool] | None:
    """The read path's one SELECT: a live record by (tenant, collection name, id) with its
    collection's ``audit_reads``, as a plain row (``id``, ``collection_id``, ``sealed``,
    ``version``, ``created_at``, ``updated_at``, ``audit_reads``). None for an unknown
    collection or record alike."""
    return (
        session.connection()
        .execute(
            _READ_ONE, {"record_id": record_id, "tenant_id": tenant_id, "collection": collection}
        )
        .one_or_none()
    )


def live_records(
    session: Session,
    tenant_id: str,
    collection_id: str,
    *,
    digests: Mapping[str, bytes],
    after: str | None,
    limit: int,
) -> Sequence[RecordRow]:
    """Live records in id order; each (field, digest) must match that field's blind index."""
    statement = select(RecordRow).where(
        RecordRow.tenant_id == tenant_id,
        RecordRow.collection_id == collection_id,
        RecordRow.deleted_at.is_(None),
    )
    for field, digest in digests.items():
        statement = statement.where(
            RecordRow.id.in_(
                select(RecordIndexRow.record_id).where(
                    RecordIndexRow.tenant_id == tenant_id,
                    RecordIndexRow.collection_id == collection_id,
                    RecordIndexRow.field == field,
                    RecordIndexRow.digest == digest,
                )
            )
        )
    if after is not None:
        statement = statement.where(RecordRow.id > after)
    return session.scalars(statement.order_by(RecordRow.id).limit(limit)).all()


def count_records(session: Session, tenant_id: str, collection_id: str, *, live: bool) -> int:
    statement = (
        select(func.count())
        .select_from(RecordRow)
        .where(RecordRow.tenant_id == tenant_id, RecordRow.collection_id == collection_id)
    )
    if live:
        statement = statement.where(RecordRow.deleted_at.is_(None))
    return int(session.execute(statement).scalar_one())


def compare_and_set(
    session: Session,
    tenant_id: str,
    record_id: str,
    *,
    expected_version: int,
    sealed: bytes | None,
    now: datetime,
    deleted: bool = False,
) -> bool:
    """Write the next version only if the stored one is still ``expected_version`` (so two
    writers that read the same version cannot both win). False when another writer did."""
    values: dict[str, object] = {"version": expected_version + 1, "updated_at": now}
    if sealed is not None:
        values["sealed"] = sealed
    if deleted:
        values["deleted_at"] = now
    result = session.execute(
        update(RecordRow)
        .where(
            RecordRow.id == record_id,
            RecordRow.tenant_id == tenant_id,
            RecordRow.version == expected_version,
            RecordRow.deleted_at.is_(None),
        )
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def replace_index(
    session: Session,
    tenant_id: str,
    collection_id: str,
    record_id: str,
    digests: Mapping[str, bytes],
) -> None:
    session.execute(
        delete(RecordIndexRow).where(
            RecordIndexRow.tenant_id == tenant_id, RecordIndexRow.record_id == record_id
        )
    )
    add_index(session, tenant_id, collection_id, record_id, digests)


_INSERT_RECORD: Final = insert(cast(Table, RecordRow.__table__))


def insert_record(
    session: Session,
    tenant_id: str,
    collection_id: str,
    record_id: str,
    *,
    sealed: bytes,
    now: datetime,
) -> None:
    """A new record at version 1 (a Core INSERT: nothing reads it back through the ORM)."""
    session.execute(
        _INSERT_RECORD,
        {
            "id": record_id,
            "tenant_id": tenant_id,
            "collection_id": collection_id,
            "sealed": sealed,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        },
    )


def add_index(
    session: Session,
    tenant_id: str,
    collection_id: str,
    record_id: str,
    digests: Mapping[str, bytes],
) -> None:
    """The index entries of a record that has none yet (a new one): no DELETE round trip."""
    if digests:
        session.execute(
            insert(RecordIndexRow),
            [
                {
                    "record_id": record_id,
                    "field": field,
                    "tenant_id": tenant_id,
                    "collection_id": collection_id,
                    "digest": digest,
                }
                for field, digest in digests.items()
            ],
        )


def drop_index(session: Session, tenant_id: str, record_id: str) -> None:
    session.execute(
        delete(RecordIndexRow).where(
            RecordIndexRow.tenant_id == tenant_id, RecordIndexRow.record_id == record_id
        )
    )


def live_record_batch(
    session: Session, tenant_id: str, collection_id: str, *, after: str | None, limit: int
) -> Sequence[RecordRow]:
    statement = select(RecordRow).where(
        RecordRow.tenant_id == tenant_id,
        RecordRow.collection_id == collection_id,
        RecordRow.deleted_at.is_(None),
    )
    if after is not None:
        statement = statement.where(RecordRow.id > after)
    return session.scalars(statement.order_by(RecordRow.id).limit(limit)).all()


def expired_deletions(session: Session, *, before: datetime, limit: int) -> Sequence[RecordRow]:
    """Soft-deleted records whose grace period ended, across tenants (the purge job's scan)."""
    return session.scalars(
        select(RecordRow)
        .where(RecordRow.deleted_at.is_not(None), RecordRow.deleted_at <= before)
        .order_by(RecordRow.deleted_at, RecordRow.id)
        .limit(limit)
    ).all()


def purge(session: Session, tenant_id: str, record_ids: Sequence[str], *, before: datetime) -> int:
    """Delete these soft-deleted records for good (index entries go with them, by cascade and
    explicitly, since SQLite enforces the cascade only with foreign keys on)."""
    session.execute(
        delete(RecordIndexRow).where(
            RecordIndexRow.tenant_id == tenant_id, RecordIndexRow.record_id.in_(record_ids)
        )
    )
    result = session.execute(
        delete(RecordRow)
        .where(
            RecordRow.tenant_id == tenant_id,
            RecordRow.id.in_(record_ids),
            RecordRow.deleted_at.is_not(None),
            RecordRow.deleted_at <= before,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_collection(session: Session, tenant_id: str, collection_id: str) -> int:
    """Remove a collection and whatever soft-deleted records it still holds; how many records."""
    session.execute(
        delete(RecordIndexRow).where(
            RecordIndexRow.tenant_id == tenant_id, RecordIndexRow.collection_id == collection_id
        )
    )
    removed = session.execute(
        delete(RecordRow)
        .where(RecordRow.tenant_id == tenant_id, RecordRow.collection_id == collection_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(CollectionRow).where(
            CollectionRow.tenant_id == tenant_id, CollectionRow.id == collection_id
        )
    )
    return int(removed.rowcount)  # type: ignore[attr-defined]
