"""Records value types: what the edge and other domains see instead of rows."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

# A parsed JSON document (json.loads output): any JSON value; records are JSON objects.
JsonObject: TypeAlias = dict[str, Any]

# Sealed payloads are bound to this purpose and to "<collection id>/<record id>" (see keys.py).
RECORD_PURPOSE: Final = "records.record"


class RecordsAction(enum.StrEnum):
    """Audit actions of the records domain, on the tenant's own chain. Details never hold data."""

    COLLECTION_CREATED = "collection.created"
    COLLECTION_UPDATED = "collection.updated"
    COLLECTION_DELETED = "collection.deleted"
    RECORD_CREATED = "record.created"
    RECORD_REPLACED = "record.replaced"
    RECORD_PATCHED = "record.patched"
    RECORD_DELETED = "record.deleted"
    RECORD_READ = "record.read"
    RECORDS_LISTED = "records.listed"
    RECORDS_PURGED = "records.purged"


@dataclass(frozen=True, slots=True)
class Collection:
    """A tenant's collection. ``json_schema`` is a draft 2020-12 schema or None."""

    id: str
    tenant_id: str
    name: str
    json_schema: Mapping[str, Any] | None
    indexed: tuple[str, ...]
    audit_reads: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Record:
    """One live record, opened. ``etag`` is the quoted strong ETag of this version."""

    id: str
    collection: str
    data: JsonObject
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return etag_for(self.version)


@dataclass(frozen=True, slots=True)
class RecordPage:
    items: Sequence[Record]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class CollectionChanges:
    """A partial update of a collection: None leaves a property as it is. ``clear_schema``
    removes the schema (JSON null cannot be told apart from "absent" otherwise)."""

    json_schema: Mapping[str, Any] | None = None
    clear_schema: bool = False
    indexed: Sequence[str] | None = None
    audit_reads: bool | None = None


def etag_for(version: int) -> str:
    """The strong ETag of a record version. Derived from the write counter, never from the
    plaintext (a hash of the data would let anyone holding an ETag confirm a guessed value)."""
    return f'"v{version}"'


def version_from_etag(etag: str) -> int | None:
    """The version an ETag names, or None for one this service never issued (a weak ETag,
    another format). Weak ETags never match: If-Match uses the strong comparison (RFC 9110
    section 13.1.1)."""
    if len(etag) < 4 or not (etag.startswith('"v') and etag.endswith('"')):
        return None
    digits = etag[2:-1]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)
