"""Records: a tenant's collections and the JSON documents in them, sealed at rest.

Owns the ``collections``, ``records`` and ``record_index_entries`` tables. Payloads are sealed
with the tenant's data key, bound to tenant, collection and record id; indexed fields are kept
only as blind indexes (HMAC), never in clear. Every write is audited in the caller's
transaction; reads return the audit event for the edge to record after the read. Never
imports the api, cli or web edges, never commits, never puts record contents in an audit
event, a log line or an error.
"""

from bastion.records.collections import SqlCollections
from bastion.records.documents import parse_object
from bastion.records.errors import (
    CollectionExists,
    CollectionNotEmpty,
    CollectionNotFound,
    InvalidCollection,
    InvalidCursor,
    InvalidFilter,
    MalformedDocument,
    RecordIntegrityError,
    RecordNotFound,
    RecordsError,
    RecordTooLarge,
    ReindexTooLarge,
    SchemaViolation,
    UnsupportedPatchType,
    VersionMismatch,
    WriteConflict,
)
from bastion.records.purge import purge_expired
from bastion.records.reencryption import RecordsReencryptionTarget
from bastion.records.service import PageRead, RecordRead, SqlRecords
from bastion.records.tampering import TamperAlarm
from bastion.records.types import (
    Collection,
    CollectionChanges,
    Record,
    RecordPage,
    RecordsAction,
    etag_for,
)

__all__ = [
    "Collection",
    "CollectionChanges",
    "CollectionExists",
    "CollectionNotEmpty",
    "CollectionNotFound",
    "InvalidCollection",
    "InvalidCursor",
    "InvalidFilter",
    "MalformedDocument",
    "PageRead",
    "Record",
    "RecordIntegrityError",
    "RecordNotFound",
    "RecordPage",
    "RecordRead",
    "RecordTooLarge",
    "RecordsAction",
    "RecordsError",
    "RecordsReencryptionTarget",
    "ReindexTooLarge",
    "SchemaViolation",
    "SqlCollections",
    "SqlRecords",
    "TamperAlarm",
    "UnsupportedPatchType",
    "VersionMismatch",
    "WriteConflict",
    "etag_for",
    "parse_object",
    "purge_expired",
]
