"""Collections: a tenant's named sets of records, each with an optional JSON Schema, a list of
indexed fields and whether reads are audited. Every change is audited in its own transaction.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.access import TenantContext
from bastion.audit import AuditLog
from bastion.identity import ClientInfo
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id
from bastion.records import documents, repository
from bastion.records.errors import (
    CollectionExists,
    CollectionNotEmpty,
    CollectionNotFound,
    ReindexTooLarge,
)
from bastion.records.events import event_for
from bastion.records.models import CollectionRow
from bastion.records.sealing import RecordSealer
from bastion.records.types import Collection, CollectionChanges, RecordsAction

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator  # imported lazily: see records.documents

# Re-indexing opens every live record within the request: bounded, so a PATCH stays a request.
MAX_REINDEX_RECORDS: Final = 10_000
REINDEX_BATCH: Final = 500
MAX_CACHED_VALIDATORS: Final = 1024


def to_collection(row: CollectionRow) -> Collection:
    return Collection(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        json_schema=None if row.json_schema is None else json.loads(row.json_schema),
        indexed=indexed_of(row),
        audit_reads=row.audit_reads,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class CollectionDefinition(Protocol):
    """What writing a record needs of its collection: a ``CollectionRow`` or the plain row of
    ``repository.collection_definition``."""

    @property
    def id(self) -> str: ...
    @property
    def json_schema(self) -> str | None: ...
    @property
    def indexed_fields(self) -> str: ...
    @property
    def version(self) -> int: ...


def indexed_of(row: CollectionDefinition) -> tuple[str, ...]:
    return tuple(json.loads(row.indexed_fields))


class SqlCollections:
    """Collection definitions, tenant-scoped; compiled schemas cached per collection version."""

    def __init__(self, *, audit_log: AuditLog, clock: Clock, sealer: RecordSealer) -> None:
        self._audit = audit_log
        self._clock = clock
        self._sealer = sealer
        self._validators: dict[tuple[str, int], Draft202012Validator | None] = {}
        self._lock = threading.Lock()

    def create(
        self,
        session: Session,
        context: TenantContext,
        *,
        name: str,
        json_schema: Mapping[str, Any] | None,
        indexed: Sequence[str],
        audit_reads: bool,
        client: ClientInfo,
    ) -> Collection:
        """A new collection. InvalidCollection (422), CollectionExists (409)."""
        documents.check_collection_name(name)
        fields = documents.check_indexed(indexed)
        if json_schema is not None:
            documents.compile_schema(json_schema)
        if repository.collection(session, context.tenant_id, name) is not None:
            raise CollectionExists
        now = self._clock.now()
        row = CollectionRow(
            id=new_id(),
            tenant_id=context.tenant_id,
            name=name,
            json_schema=None if json_schema is None else documents.encode_schema(json_schema),
            indexed_fields=json.dumps(list(fields)),
            audit_reads=audit_reads,
            version=1,
            created_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # created by a concurrent request since the check above
            raise CollectionExists from None
        self._audit.append(
            session,
            event_for(
                context,
                RecordsAction.COLLECTION_CREATED,
                target=name,
                client=client,
                details={
                    "indexed": list(fields),
                    "has_schema": json_schema is not None,
                    "audit_reads": audit_reads,
                },
            ),
        )
        return to_collection(row)

    def page(
        self, session: Session, context: TenantContext, *, after: str | None, limit: int
    ) -> list[Collection]:
        """Up to ``limit`` collections ordered by name, after the name ``after``."""
        rows = repository.collections(session, context.tenant_id, after=after, limit=limit)
        return [to_collection(row) for row in rows]

    def get(self, session: Session, context: TenantContext, name: str) -> Collection:
        return to_collection(self.row(session, context, name))

    def row(self, session: Session, context: TenantContext, name: str) -> CollectionRow:
        """The collection row; CollectionNotFound (404) also for another tenant's name."""
        row = repository.collection(session, context.tenant_id, name)
        if row is None:
            raise CollectionNotFound
        return row

    def definition(
        self, session: Session, context: TenantContext, name: str
    ) -> CollectionDefinition:
        """As ``row``, as a plain row for a record write; CollectionNotFound (404) likewise."""
        found = repository.collection_definition(session, context.tenant_id, name)
        if found is None:
            raise CollectionNotFound
        return found

    def validator(self, row: CollectionDefinition) -> Draft202012Validator | None:
        """The compiled schema of this collection version, or None without a schema."""
        key = (row.id, row.version)
        if key in self._validators:
            return self._validators[key]
        compiled = None
        if row.json_schema is not None:
            compiled = documents.compile_schema(json.loads(row.json_schema))
        with self._lock:
            while len(self._validators) >= MAX_CACHED_VALIDATORS:
                self._validators.pop(next(iter(self._validators)))
            self._validators[key] = compiled
        return compiled

    def update(
        self,
        session: Session,
        context: TenantContext,
        name: str,
        changes: CollectionChanges,
        *,
        client: ClientInfo,
    ) -> Collection:
        """Change schema, indexed fields or read auditing. A new schema applies to writes from
        now on (existing records are not re-validated). New indexed fields re-index the live
        records at once (ReindexTooLarge, 409, above MAX_REINDEX_RECORDS)."""
        row = self.row(session, context, name)
        changed: list[str] = []
        if changes.clear_schema and row.json_schema is not None:
            row.json_schema = None
            changed.append("schema")
        elif changes.json_schema is not None:
            documents.compile_schema(changes.json_schema)
            row.json_schema = documents.encode_schema(changes.json_schema)
            changed.append("schema")
        if changes.indexed is not None:
            fields = documents.check_indexed(changes.indexed)
            if fields != indexed_of(row):
                live = repository.count_records(session, context.tenant_id, row.id, live=True)
                if live > MAX_REINDEX_RECORDS:
                    raise ReindexTooLarge(
                        f"Changing indexed fields re-indexes every record within the request; "
                        f"this collection has {live}, the limit is {MAX_REINDEX_RECORDS}. "
                        "Background re-indexing is not implemented yet."
                    )
                self._reindex(session, context, row, fields)
                row.indexed_fields = json.dumps(list(fields))
                changed.append("indexed")
        if changes.audit_reads is not None and changes.audit_reads != row.audit_reads:
            row.audit_reads = changes.audit_reads
            changed.append("audit_reads")
        if changed:
            row.version += 1
            row.updated_at = self._clock.now()
            session.flush()
            self._audit.append(
                session,
                event_for(
                    context,
                    RecordsAction.COLLECTION_UPDATED,
                    target=name,
                    client=client,
                    details={"changed": changed, "audit_reads": row.audit_reads},
                ),
            )
        return to_collection(row)

    def _reindex(
        self,
        session: Session,
        context: TenantContext,
        collection: CollectionRow,
        fields: tuple[str, ...],
    ) -> None:
        """Rebuild the blind indexes of every live record for ``fields``, batch by batch."""
        tenant_id = context.tenant_id
        after: str | None = None
        while True:
            batch = repository.live_record_batch(
                session, tenant_id, collection.id, after=after, limit=REINDEX_BATCH
            )
            if not batch:
                return
            for row in batch:
                document = self._sealer.open(tenant_id, collection.name, row).data
                digests = self._sealer.digests(tenant_id, collection.id, document, fields)
                repository.replace_index(session, tenant_id, collection.id, row.id, digests)
            after = batch[-1].id

    def delete(
        self, session: Session, context: TenantContext, name: str, *, client: ClientInfo
    ) -> None:
        """Delete an empty collection (CollectionNotEmpty, 409, while it holds live records).
        Records already soft-deleted in it are purged with it, at once."""
        row = self.row(session, context, name)
        if repository.count_records(session, context.tenant_id, row.id, live=True):
            raise CollectionNotEmpty
        purged = repository.delete_collection(session, context.tenant_id, row.id)
        self._audit.append(
            session,
            event_for(
                context,
                RecordsAction.COLLECTION_DELETED,
                target=name,
                client=client,
                details={"purged_records": purged},
            ),
        )
