"""Records errors::

    RecordsError
    ├── CollectionNotFound (NotFound)            no such collection here (or another tenant's)
    ├── RecordNotFound (NotFound)                no such live record (deleted, or another tenant's)
    ├── CollectionExists (Conflict)              the name is taken in this tenant
    ├── CollectionNotEmpty (Conflict)            a collection still holding live records
    ├── ReindexTooLarge (Conflict)               changing indexed fields of a collection too big to
    │                                            re-index within one request (not supported yet)
    ├── WriteConflict (Conflict)                 concurrent writers kept winning; retry
    ├── VersionMismatch (PreconditionFailed)     If-Match names a version that is not current
    ├── MalformedDocument (InvalidInput)         the body is not JSON, or not a JSON object
    ├── InvalidCollection (Unprocessable)        bad name, schema or indexed fields
    ├── InvalidFilter (InvalidInput)             a filter on a field the collection does not index
    ├── InvalidCursor (InvalidInput)             a cursor that is not a record id
    ├── SchemaViolation (Unprocessable)          the document breaks the collection's JSON Schema;
    │                                            ``errors`` lists {pointer, detail}
    ├── RecordTooLarge (PayloadTooLarge)         the document exceeds max_record_bytes
    ├── UnsupportedPatchType (UnsupportedMediaType)  a PATCH not in application/merge-patch+json
    └── RecordIntegrityError                     (500) the stored ciphertext does not open for
                                                 this record: tampered, or moved from another
                                                 record or tenant. Names the collection and
                                                 record, never data.

No error carries record contents: a refused document may itself hold the secret.
"""

from __future__ import annotations

from bastion.errors import (
    AppError,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    Unprocessable,
    UnsupportedMediaType,
)


class RecordsError(AppError):
    code = "records.error"


class CollectionNotFound(RecordsError, NotFound):
    code = "records.collection_not_found"
    public_message = "No such collection."


class RecordNotFound(RecordsError, NotFound):
    code = "records.record_not_found"
    public_message = "No such record."


class CollectionExists(RecordsError, Conflict):
    code = "records.collection_exists"
    public_message = "A collection with this name already exists."


class CollectionNotEmpty(RecordsError, Conflict):
    code = "records.collection_not_empty"
    public_message = "The collection still holds records; delete them first."


class ReindexTooLarge(RecordsError, Conflict):
    code = "records.reindex_too_large"
    public_message = "The collection is too large to re-index within one request."


class WriteConflict(RecordsError, Conflict):
    code = "records.write_conflict"
    public_message = "The record kept changing under concurrent writes; retry."


class VersionMismatch(RecordsError, PreconditionFailed):
    code = "records.version_mismatch"
    public_message = "The record changed: If-Match does not name its current ETag."


class MalformedDocument(RecordsError, InvalidInput):
    code = "records.malformed_document"
    public_message = "The request body is not a JSON object."


class InvalidCollection(RecordsError, Unprocessable):
    code = "records.invalid_collection"
    public_message = "The collection definition is not valid."


class InvalidFilter(RecordsError, InvalidInput):
    code = "records.invalid_filter"
    public_message = "Filters apply only to the collection's indexed fields."


class InvalidCursor(RecordsError, InvalidInput):
    code = "records.invalid_cursor"
    public_message = "The pagination cursor is not valid."


class SchemaViolation(RecordsError, Unprocessable):
    code = "records.schema_violation"
    public_message = "The document does not match the collection's schema."


class RecordTooLarge(RecordsError, PayloadTooLarge):
    code = "records.record_too_large"
    public_message = "The record is larger than this installation allows."


class UnsupportedPatchType(RecordsError, UnsupportedMediaType):
    code = "records.unsupported_patch_type"
    public_message = "Send a JSON Merge Patch (RFC 7386) as application/merge-patch+json."


class RecordIntegrityError(RecordsError):
    # No HTTP kind on purpose: a server-side data fault (500), never the caller's input.
    code = "records.integrity_check_failed"
    public_message = "A stored record failed its integrity check."
