"""Reading the security-event store: filtered, newest-first, cursor-paginated pages.

Tenant scoping is the caller's explicit choice: ``search_tenant`` always adds the tenant
predicate (owners, auditors and admins of that tenant); ``search_all`` is for operators only, and
the API reaches it only through the ``operator()`` declaration.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from bastion.alerts.errors import InvalidSecurityEventQuery
from bastion.alerts.models import AlertDeliveryRow, SecurityEventRow
from bastion.alerts.types import SecurityEvent, Severity, StoredSecurityEvent
from bastion.kernel.clock import as_utc

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
_CURSOR_VERSION: Final = "s1"
_TYPE_PREFIX_ESCAPES: Final = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


@dataclass(frozen=True, slots=True)
class SecurityEventFilter:
    """Every given criterion must hold. ``type`` ending in ``.`` matches a prefix (``login.``);
    ``min_severity`` keeps that severity and above; ``since`` inclusive, ``until`` exclusive."""

    type: str | None = None
    min_severity: Severity | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class SecurityEventPage:
    items: tuple[StoredSecurityEvent, ...]
    next_cursor: str | None


def stored_event(row: SecurityEventRow) -> StoredSecurityEvent:
    return StoredSecurityEvent(
        id=row.id,
        occurred_at=as_utc(row.occurred_at),
        event=SecurityEvent(
            type=row.type,
            severity=Severity(row.severity),
            subject=row.subject,
            source=row.source,
            tenant_id=row.tenant_id,
            details=json.loads(row.details),
        ),
    )


def encode_cursor(item: StoredSecurityEvent) -> str:
    raw = f"{_CURSOR_VERSION}|{item.occurred_at.isoformat()}|{item.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(time, id) to continue below; InvalidSecurityEventQuery for anything not issued here."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        version, moment_text, event_id = raw.split("|")
        moment = datetime.fromisoformat(moment_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidSecurityEventQuery("the cursor was not issued by this API") from None
    if version != _CURSOR_VERSION or moment.tzinfo is None or len(event_id) > 36:
        raise InvalidSecurityEventQuery("the cursor was not issued by this API")
    return moment.astimezone(UTC), event_id


def search_tenant(
    session: Session,
    tenant_id: str,
    filters: SecurityEventFilter | None = None,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> SecurityEventPage:
    """A page of ``tenant_id``'s events only, newest first (limit clamped to 1..200)."""
    statement = select(SecurityEventRow).where(SecurityEventRow.tenant_id == tenant_id)
    return _page(session, statement, filters, limit=limit, cursor=cursor)


def search_all(
    session: Session,
    filters: SecurityEventFilter | None = None,
    *,
    tenant_id: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> SecurityEventPage:
    """Operators: every event (optionally one tenant's), newest first."""
    statement = select(SecurityEventRow)
    if tenant_id is not None:
        statement = statement.where(SecurityEventRow.tenant_id == tenant_id)
    return _page(session, statement, filters, limit=limit, cursor=cursor)


def _page(
    session: Session,
    statement: Select[Any],
    filters: SecurityEventFilter | None,
    *,
    limit: int,
    cursor: str | None,
) -> SecurityEventPage:
    rows = SecurityEventRow
    size = max(1, min(limit, MAX_PAGE_SIZE))
    filters = filters or SecurityEventFilter()
    since, until = filters.since, filters.until
    if since is not None and until is not None and _utc(since) > _utc(until):
        raise InvalidSecurityEventQuery("since is after until")
    statement = _filtered(statement, filters)
    if cursor is not None:
        moment, event_id = decode_cursor(cursor)
        statement = statement.where(
            or_(rows.occurred_at < moment, and_(rows.occurred_at == moment, rows.id < event_id))
        )
    ordered = statement.order_by(rows.occurred_at.desc(), rows.id.desc()).limit(size + 1)
    found = [stored_event(row) for row in session.scalars(ordered)]
    items = tuple(found[:size])
    next_cursor = encode_cursor(items[-1]) if len(found) > size else None
    return SecurityEventPage(items=items, next_cursor=next_cursor)


def _filtered(statement: Select[Any], filters: SecurityEventFilter) -> Select[Any]:
    rows = SecurityEventRow
    if filters.type is not None:
        if filters.type.endswith("."):
            prefix = filters.type.translate(_TYPE_PREFIX_ESCAPES)
            statement = statement.where(rows.type.like(prefix + "%", escape="\\"))
        else:
            statement = statement.where(rows.type == filters.type)
    if filters.min_severity is not None:
        statement = statement.where(rows.severity >= int(filters.min_severity))
    if filters.since is not None:
        statement = statement.where(rows.occurred_at >= _utc(filters.since))
    if filters.until is not None:
        statement = statement.where(rows.occurred_at < _utc(filters.until))
    return statement


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidSecurityEventQuery("since and until need a time zone (e.g. Z)")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    sink: str
    status: str  # pending, sent, failed
    attempts: int
    last_error: str | None


def delivery_status(session: Session, event_id: str) -> list[DeliveryStatus]:
    """Where one event's alert deliveries stand, by sink name."""
    rows = session.scalars(
        select(AlertDeliveryRow)
        .where(AlertDeliveryRow.event_id == event_id)
        .order_by(AlertDeliveryRow.sink)
    )
    return [DeliveryStatus(r.sink, r.status, r.attempts, r.last_error) for r in rows]
