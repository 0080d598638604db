"""Records: JSON documents sealed under the tenant's data key, in a tenant's collections.

Every write is audited in its own transaction (the caller's); reads hand back the audit event
to record *after* the read transaction ends (``RecordRead.audit``), through the read-audit
path of the edge, when the collection audits reads.

Concurrency: each write is a compare-and-swap on the record's version (``If-Match`` names the
version the client saw: a mismatch is VersionMismatch, 412). Without ``If-Match`` a write
applies to whatever version is current; a lost race re-reads and retries, so a merge patch
never overwrites a change it did not see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from bastion.access import TenantContext
from bastion.audit import AuditEvent, AuditLog
from bastion.identity import ClientInfo
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id
from bastion.records import documents, repository
from bastion.records.collections import CollectionDefinition, SqlCollections, indexed_of
from bastion.records.errors import (
    InvalidCursor,
    InvalidFilter,
    MalformedDocument,
    RecordNotFound,
    VersionMismatch,
    WriteConflict,
)
from bastion.records.events import event_for, record_target
from bastion.records.keys import RecordKeys
from bastion.records.models import CollectionRow, RecordRow
from bastion.records.sealing import RecordSealer, TamperHandler
from bastion.records.types import (
    JsonObject,
    Record,
    RecordPage,
    RecordsAction,
    version_from_etag,
)
from bastion.settings import RecordsSettings

WRITE_ATTEMPTS: Final = 5
MAX_ID_CHARS: Final = 36
MAX_FILTERS: Final = 8


@dataclass(frozen=True, slots=True)
class RecordRead:
    """A read's result and the audit event to record once the read transaction has ended
    (None when the collection does not audit reads)."""

    record: Record
    audit: AuditEvent | None


@dataclass(frozen=True, slots=True)
class PageRead:
    page: RecordPage
    audit: AuditEvent | None


class SqlRecords:
    """The records service; thread-safe; every call is scoped to the context's tenant."""

    def __init__(
        self,
        *,
        keys: RecordKeys,
        audit_log: AuditLog,
        clock: Clock,
        settings: RecordsSettings,
        on_tamper: TamperHandler | None = None,
    ) -> None:
        """``on_tamper`` (e.g. a ``TamperAlarm``) hears of every record that fails to open."""
        self._sealer = RecordSealer(keys, on_tamper=on_tamper)
        self._audit = audit_log
        self._clock = clock
        self._settings = settings
        self.collections = SqlCollections(audit_log=audit_log, clock=clock, sealer=self._sealer)

    @property
    def settings(self) -> RecordsSettings:
        return self._settings

    # ----------------------------------------------------------------- reads
    def read(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        record_id: str,
        *,
        client: ClientInfo,
    ) -> RecordRead:
        """One live record: one SELECT joining the collection, one open(). RecordNotFound (404)
        for an unknown collection or record, or another tenant's; RecordIntegrityError (500)
        for a ciphertext that does not belong to this record."""
        found = repository.live_record_with_collection(
            session, context.tenant_id, collection, record_id[:MAX_ID_CHARS]
        )
        if found is None:
            raise RecordNotFound
        record = self._sealer.open(context.tenant_id, collection, found)
        audit = None
        if found.audit_reads:
            audit = event_for(
                context,
                RecordsAction.RECORD_READ,
                target=record_target(collection, record.id),
                client=client,
                details={"version": record.version},
            )
        return RecordRead(record, audit)

    def page(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        *,
        filters: Mapping[str, str],
        after: str | None,
        limit: int,
        client: ClientInfo,
    ) -> PageRead:
        """Live records in id order, ``limit`` at most, after the record id ``after``; each
        filter an exact match on an indexed field, through its blind index. InvalidFilter (400)
        for a field the collection does not index, InvalidCursor (400)."""
        row = self.collections.row(session, context, collection)
        indexed = indexed_of(row)
        if len(filters) > MAX_FILTERS:
            raise InvalidFilter(f"At most {MAX_FILTERS} filters can be combined.")
        unknown = sorted(set(filters) - set(indexed))
        if unknown:
            raise InvalidFilter(
                f"Not indexed in collection {collection!r}: {', '.join(unknown)}.",
                indexed=list(indexed),
            )
        if after is not None and (len(after) != MAX_ID_CHARS or not after.isascii()):
            raise InvalidCursor
        digests = {
            field: self._sealer.digest(context.tenant_id, row.id, field, value)
            for field, value in filters.items()
        }
        rows = repository.live_records(
            session, context.tenant_id, row.id, digests=digests, after=after, limit=limit + 1
        )
        items = [self._open(context, collection, r) for r in rows[:limit]]
        next_cursor = items[-1].id if len(rows) > limit else None
        audit = None
        if row.audit_reads:
            audit = event_for(
                context,
                RecordsAction.RECORDS_LISTED,
                target=collection,
                client=client,
                details={"returned": len(items), "filtered_by": sorted(filters)},
            )
        return PageRead(RecordPage(items, next_cursor), audit)

    # ----------------------------------------------------------------- writes
    def create(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        *,
        document: JsonObject,
        client: ClientInfo,
    ) -> Record:
        """A new record with a random id. SchemaViolation (422), RecordTooLarge (413)."""
        row = self.collections.definition(session, context, collection)
        record_id = new_id()
        sealed, digests = self._prepare(context, row, record_id, document)
        now = self._clock.now()
        repository.insert_record(
            session, context.tenant_id, row.id, record_id, sealed=sealed, now=now
        )
        # A new id has no index entries to replace (the INSERT above would have failed).
        repository.add_index(session, context.tenant_id, row.id, record_id, digests)
        self._record_write(
            session,
            context,
            RecordsAction.RECORD_CREATED,
            record_target(collection, record_id),
            version=1,
            client=client,
        )
        return Record(record_id, collection, document, 1, as_utc(now), as_utc(now))

    def replace(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        record_id: str,
        *,
        document: JsonObject,
        if_match: str | None,
        client: ClientInfo,
    ) -> Record:
        """Replace the whole document. VersionMismatch (412) when ``if_match`` is not current."""
        return self._write(
            session,
            context,
            collection,
            record_id,
            if_match=if_match,
            client=client,
            action=RecordsAction.RECORD_REPLACED,
            change=lambda _current: document,
        )

    def patch(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        record_id: str,
        *,
        patch: JsonObject,
        if_match: str | None,
        client: ClientInfo,
    ) -> Record:
        """Apply a JSON Merge Patch (RFC 7386) to the current document; the result must still
        be an object within the schema and size limit."""
        return self._write(
            session,
            context,
            collection,
            record_id,
            if_match=if_match,
            client=client,
            action=RecordsAction.RECORD_PATCHED,
            change=lambda current: documents.merge_patch(current, patch),
        )

    def delete(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        record_id: str,
        *,
        if_match: str | None,
        client: ClientInfo,
    ) -> None:
        """Soft-delete: unreadable at once, its blind indexes dropped, purged for good after
        ``purge_grace_seconds`` by the records.purge job."""
        row = self.collections.row(session, context, collection)
        for _ in range(WRITE_ATTEMPTS):
            current = self._current(session, context, row, record_id, if_match)
            if repository.compare_and_set(
                session,
                context.tenant_id,
                current.id,
                expected_version=current.version,
                sealed=None,
                now=self._clock.now(),
                deleted=True,
            ):
                repository.drop_index(session, context.tenant_id, current.id)
                self._record_write(
                    session,
                    context,
                    RecordsAction.RECORD_DELETED,
                    record_target(collection, current.id),
                    version=current.version + 1,
                    client=client,
                )
                return
            if if_match is not None:
                raise VersionMismatch
        raise WriteConflict

    # ----------------------------------------------------------------- internals
    def _write(
        self,
        session: Session,
        context: TenantContext,
        collection: str,
        record_id: str,
        *,
        if_match: str | None,
        client: ClientInfo,
        action: RecordsAction,
        change: Callable[[JsonObject], Any],
    ) -> Record:
        row = self.collections.row(session, context, collection)
        for _ in range(WRITE_ATTEMPTS):
            current = self._current(session, context, row, record_id, if_match)
            opened = self._open(context, collection, current)
            document = change(opened.data)
            sealed, digests = self._prepare(context, row, current.id, document)
            now = self._clock.now()
            if repository.compare_and_set(
                session,
                context.tenant_id,
                current.id,
                expected_version=current.version,
                sealed=sealed,
                now=now,
            ):
                repository.replace_index(session, context.tenant_id, row.id, current.id, digests)
                version = current.version + 1
                self._record_write(
                    session,
                    context,
                    action,
                    record_target(collection, current.id),
                    version=version,
                    client=client,
                )
                return Record(
                    current.id,
                    collection,
                    document,
                    version,
                    as_utc(current.created_at),
                    as_utc(now),
                )
            if if_match is not None:
                raise VersionMismatch
        raise WriteConflict

    def _current(
        self,
        session: Session,
        context: TenantContext,
        collection: CollectionRow,
        record_id: str,
        if_match: str | None,
    ) -> RecordRow:
        # populate_existing: a retry must see the version another writer just committed, not
        # the row this session already holds.
        current = repository.live_record(
            session, context.tenant_id, collection.id, record_id[:MAX_ID_CHARS], fresh=True
        )
        if current is None:
            raise RecordNotFound
        if if_match is not None and not _matches(if_match, current.version):
            raise VersionMismatch
        return current

    def _prepare(
        self,
        context: TenantContext,
        collection: CollectionDefinition,
        record_id: str,
        document: Any,
    ) -> tuple[bytes, dict[str, bytes]]:
        """Validate, measure, seal and index a document (before any write of the caller's:
        see the keyring's note on SQLite write locks)."""
        if not isinstance(document, dict):
            raise MalformedDocument("A record must be a JSON object.")
        # Encoding first: text with no UTF-8 form is a 400 whatever the schema says, and an
        # oversized document is refused before the validator walks it.
        encoded = documents.encode(document)
        documents.check_size(encoded, limit=self._settings.max_record_bytes)
        validator = self.collections.validator(collection)
        if validator is not None:
            documents.validate(validator, document)
        sealed = self._sealer.seal(context.tenant_id, collection.id, record_id, encoded)
        digests = self._sealer.digests(
            context.tenant_id, collection.id, document, indexed_of(collection)
        )
        return sealed, digests

    def _open(self, context: TenantContext, collection: str, row: RecordRow) -> Record:
        return self._sealer.open(context.tenant_id, collection, row)

    def _record_write(
        self,
        session: Session,
        context: TenantContext,
        action: RecordsAction,
        target: str,
        *,
        version: int,
        client: ClientInfo,
    ) -> None:
        self._audit.append(
            session,
            event_for(
                context,
                action,
                target=target,
                client=client,
                details={"version": version},
            ),
        )


def _matches(if_match: str, version: int) -> bool:
    """RFC 9110 section 13.1.1: ``*`` or any listed strong ETag equal to the current one."""
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag == "*" or version_from_etag(tag) == version:
            return True
    return False
