"""``/api/v1/tenants/{tenant}/collections``: collections and the encrypted records in them.

Record bodies are read raw (any JSON object; ``application/merge-patch+json`` for PATCH), so a
malformed body is a 400, an oversized record a 413 and a schema violation a 422 with JSON
Pointers, and nothing is written on any refusal. Reads of a collection that audits reads are
recorded through the read-audit path *after* the request transaction has committed and before
the body is sent (see ``_read_audit``): a read whose audit entry fails is answered 503, never
with the data.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from bastion.access import Permission, TenantContext
from bastion.api.access import requires, tenant_call
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.records import (
    CollectionList,
    CollectionOut,
    CreateCollectionRequest,
    RecordList,
    RecordOut,
    UpdateCollectionRequest,
)
from bastion.api.tenant_call import TenantCall
from bastion.audit import AuditEvent
from bastion.errors import UnsupportedMediaType
from bastion.identity import ClientInfo
from bastion.records import (
    CollectionChanges,
    InvalidFilter,
    Record,
    UnsupportedPatchType,
    parse_object,
)

router = APIRouter(prefix="/api/v1/tenants/{tenant}/collections", tags=["records"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "The caller's role lacks the permission (audited)."},
    404: {"description": "No such tenant, collection or record (or another tenant's)."},
}
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    400: {"description": "The body is not a JSON object."},
    409: {"description": "Concurrent writes kept winning; retry."},
    412: {"description": "If-Match does not name the record's current ETag."},
    413: {"description": "The record is over the size limit."},
    415: {"description": "The body's content type is not accepted here."},
    422: {"description": "The record breaks the collection's schema (errors[].pointer)."},
}
READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    400: {
        "description": "An unknown query parameter, a filter on a field not indexed, a bad cursor."
    },
    503: {"description": "The read could not be audited, so it is not answered."},
}
JSON_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
MERGE_PATCH_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
    }
}
MERGE_PATCH: Final = "application/merge-patch+json"
FILTER_PREFIX: Final = "filter["
LIST_PARAMETERS: Final = frozenset({"limit", "cursor"})
NamePath = Annotated[str, Path(min_length=1, max_length=64)]
RecordPath = Annotated[str, Path(min_length=1, max_length=36)]
IfMatch = Annotated[str | None, Header(max_length=1024)]
Cursor = Annotated[str | None, Query(max_length=64)]


# ----------------------------------------------------------------- read auditing
async def _read_audit(container: ContainerDep) -> AsyncIterator[list[AuditEvent]]:
    """Collects a read's audit events and records them after the request transaction ends.

    Declared as a route's *first* parameter, so it is entered before the request session and
    exited after it (function-scoped dependencies unwind last-in, first-out): the session has
    committed (and released any SQLite write lock) before the event goes to the read-audit
    batcher, and the body is sent only after ``record`` returned. Nothing is recorded for a
    read that failed.

    ``async`` so that entering it costs no threadpool hop; ``record`` blocks, so it runs in a
    worker thread, only when there is an event to record, and (as FastAPI ends a sync generator
    dependency) under a limiter of its own: waiting for the group commit holds no request slot.
    """
    pending: list[AuditEvent] = []
    yield pending
    for event in pending:
        # Blocks until the group commit holding the event is durable (AuditWriteFailed: 503).
        await to_thread.run_sync(container.read_audit.record, event, limiter=CapacityLimiter(1))


ReadAuditDep = Annotated[list[AuditEvent], Depends(_read_audit, scope="function")]


# ----------------------------------------------------------------- bodies
def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


async def _json_document(request: Request) -> dict[str, Any]:
    """The body as a JSON object (400 otherwise), sent as application/json (415 otherwise)."""
    return _json_object(_media_type(request), await request.body())


def _json_object(media_type: str, body: bytes) -> dict[str, Any]:
    if media_type != "application/json" and not (
        media_type.startswith("application/")
        and media_type.endswith("+json")
        and media_type != MERGE_PATCH
    ):
        raise UnsupportedMediaType("Send the record as application/json.")
    return parse_object(body)


async def _merge_patch(request: Request) -> dict[str, Any]:
    """The body as a JSON Merge Patch object, sent as application/merge-patch+json."""
    if _media_type(request) != MERGE_PATCH:
        raise UnsupportedPatchType
    return parse_object(await request.body(), what="The merge patch")


DocumentBody = Annotated[dict[str, Any], Depends(_json_document)]
PatchBody = Annotated[dict[str, Any], Depends(_merge_patch)]


# ----------------------------------------------------------------- answers
def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "data": record.data,
        "etag": record.etag,
        "created_at": _time(record.created_at),
        "updated_at": _time(record.updated_at),
    }


def _record_response(
    record: Record, *, status_code: int = 200, location: str | None = None
) -> Response:
    # Serialised here rather than through the response model: the read path is benchmarked,
    # and the document is plain JSON already.
    headers = {"ETag": record.etag}
    if location is not None:
        headers["Location"] = location
    return Response(
        content=json.dumps(_record_json(record), separators=(",", ":"), ensure_ascii=False),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


# ----------------------------------------------------------------- collections
@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        **PROBLEMS,
        409: {"description": "Name taken."},
        422: {"description": "Bad definition."},
    },
)
def create_collection(
    body: CreateCollectionRequest,
    context: Annotated[TenantContext, requires(Permission.COLLECTION_MANAGE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> CollectionOut:
    """Create a collection: a name (stored in clear), an optional JSON Schema (draft 2020-12),
    the fields to index for exact-match filters, and whether reads are audited (default yes)."""
    collection = container.records.collections.create(
        session,
        context,
        name=body.name,
        json_schema=body.json_schema,
        indexed=body.indexed,
        audit_reads=body.audit_reads,
        client=client,
    )
    return CollectionOut.of(collection)


@router.get("", responses=PROBLEMS)
def list_collections(
    context: Annotated[TenantContext, requires(Permission.COLLECTION_READ)],
    container: ContainerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> CollectionList:
    """The tenant's collections ordered by name; ``cursor`` is the last name of a page."""
    found = container.records.collections.page(session, context, after=cursor, limit=limit + 1)
    page = found[:limit]
    return CollectionList(
        items=[CollectionOut.of(c) for c in page],
        next_cursor=page[-1].name if len(found) > limit else None,
    )


@router.get("/{name}", responses=PROBLEMS)
def get_collection(
    name: NamePath,
    context: Annotated[TenantContext, requires(Permission.COLLECTION_READ)],
    container: ContainerDep,
    session: SessionDep,
) -> CollectionOut:
    return CollectionOut.of(container.records.collections.get(session, context, name))


@router.patch(
    "/{name}",
    responses={
        **PROBLEMS,
        409: {"description": "Too many records to re-index."},
        422: {"description": "Bad definition."},
    },
)
def update_collection(
    *,
    name: NamePath,
    body: UpdateCollectionRequest,
    context: Annotated[TenantContext, requires(Permission.COLLECTION_MANAGE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> CollectionOut:
    """Change the schema (``null`` removes it; existing records are not re-validated), the
    indexed fields (live records are re-indexed at once) or read auditing."""
    given = body.model_fields_set
    changes = CollectionChanges(
        json_schema=body.json_schema,
        clear_schema="json_schema" in given and body.json_schema is None,
        indexed=body.indexed,
        audit_reads=body.audit_reads,
    )
    collection = container.records.collections.update(
        session, context, name, changes, client=client
    )
    return CollectionOut.of(collection)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 409: {"description": "The collection still holds records."}},
)
def delete_collection(
    name: NamePath,
    context: Annotated[TenantContext, requires(Permission.COLLECTION_MANAGE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> None:
    """Delete an empty collection (records awaiting purge in it are purged with it)."""
    container.records.collections.delete(session, context, name, client=client)


# ----------------------------------------------------------------- records
@router.post(
    "/{name}/records",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordOut,
    responses=WRITE_PROBLEMS,
    openapi_extra=JSON_BODY,
)
async def create_record(
    *,
    request: Request,
    name: NamePath,
    call: Annotated[TenantCall, tenant_call(Permission.RECORD_WRITE)],
) -> Response:
    """Store a JSON object as a new record (random id); answers it with its ETag."""
    media_type = _media_type(request)
    body = await request.body()
    container = call.container

    def create(session: Session, context: TenantContext, client: ClientInfo) -> Record:
        # The body is judged only once the caller is authorized (401/404/403 come first).
        document = _json_object(media_type, body)
        return container.records.create(session, context, name, document=document, client=client)

    record = await call.run(create)
    return _record_response(record, status_code=201, location=f"{request.url.path}/{record.id}")


@router.get("/{name}/records", response_model=RecordList, responses=READ_PROBLEMS)
def list_records(
    *,
    audit: ReadAuditDep,
    request: Request,
    name: NamePath,
    context: Annotated[TenantContext, requires(Permission.RECORD_READ)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Cursor = None,
) -> Response:
    """Live records in id order. ``filter[<field>]=<value>`` (repeatable, ANDed) matches an
    indexed field exactly, through its blind index. ``limit`` defaults to the configured page
    size and is capped at the configured maximum."""
    settings = container.records.settings
    size = min(limit or settings.default_page_size, settings.max_page_size)
    read = container.records.page(
        session,
        context,
        name,
        filters=_filters(request),
        after=cursor,
        limit=size,
        client=client,
    )
    if read.audit is not None:
        audit.append(read.audit)
    body = {
        "items": [_record_json(r) for r in read.page.items],
        "next_cursor": read.page.next_cursor,
    }
    return Response(
        content=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        media_type="application/json",
    )


def _filters(request: Request) -> dict[str, str]:
    """``filter[<field>]=<value>`` pairs. Any other unknown parameter is refused rather than
    ignored: ``?status=x`` silently answering every record would look like a match."""
    filters: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in LIST_PARAMETERS:
            continue
        if not (key.startswith(FILTER_PREFIX) and key.endswith("]")):
            raise InvalidFilter("Unknown query parameter; filter with filter[<field>]=<value>.")
        field = key[len(FILTER_PREFIX) : -1]
        if field in filters:
            raise InvalidFilter(f"filter[{field}] is given more than once.")
        filters[field] = value
    return filters


@router.get("/{name}/records/{record_id}", response_model=RecordOut, responses=READ_PROBLEMS)
async def get_record(
    *,
    name: NamePath,
    record_id: RecordPath,
    call: Annotated[TenantCall, tenant_call(Permission.RECORD_READ)],
) -> Response:
    """One record with its ``ETag``."""
    records = call.container.records

    def read(
        session: Session, context: TenantContext, client: ClientInfo
    ) -> tuple[Record, AuditEvent | None]:
        found = records.read(session, context, name, record_id, client=client)
        return found.record, found.audit

    return _record_response(await call.run_read(read))


@router.put(
    "/{name}/records/{record_id}",
    response_model=RecordOut,
    responses=WRITE_PROBLEMS,
    openapi_extra=JSON_BODY,
)
def replace_record(
    *,
    name: NamePath,
    record_id: RecordPath,
    context: Annotated[TenantContext, requires(Permission.RECORD_WRITE)],
    document: DocumentBody,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
    if_match: IfMatch = None,
) -> Response:
    """Replace the whole document. With ``If-Match``, only if it names the current ETag (412
    otherwise); without it, the last writer wins."""
    record = container.records.replace(
        session, context, name, record_id, document=document, if_match=if_match, client=client
    )
    return _record_response(record)


@router.patch(
    "/{name}/records/{record_id}",
    response_model=RecordOut,
    responses=WRITE_PROBLEMS,
    openapi_extra=MERGE_PATCH_BODY,
)
def patch_record(
    *,
    name: NamePath,
    record_id: RecordPath,
    context: Annotated[TenantContext, requires(Permission.RECORD_WRITE)],
    patch: PatchBody,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
    if_match: IfMatch = None,
) -> Response:
    """Apply a JSON Merge Patch (RFC 7386): members merge, ``null`` removes one. Needs
    records:record:read too: the answer is the merged, stored document."""
    if not context.has_permission(Permission.RECORD_READ):
        # A write-only caller (custom role, API key) would read any record back through an
        # empty patch, unaudited; authorize refuses it (403) and records the refusal.
        container.access.authorize(session, context, Permission.RECORD_READ, client=client)
    record = container.records.patch(
        session, context, name, record_id, patch=patch, if_match=if_match, client=client
    )
    return _record_response(record)


@router.delete(
    "/{name}/records/{record_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 409: WRITE_PROBLEMS[409], 412: WRITE_PROBLEMS[412]},
)
def delete_record(
    *,
    name: NamePath,
    record_id: RecordPath,
    context: Annotated[TenantContext, requires(Permission.RECORD_DELETE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
    if_match: IfMatch = None,
) -> None:
    """Delete a record: gone from reads at once, purged for good after the grace period."""
    container.records.delete(session, context, name, record_id, if_match=if_match, client=client)
