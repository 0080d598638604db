"""Reading the audit log: filtered, cursor-paginated pages of one tenant's chain.

Tenant-scoped by construction: every query names one chain (the tenant's, or the system chain for
operators), and the caller decides, from the principal's membership, which one it may read.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bastion.audit import repository
from bastion.audit.canonical import format_time
from bastion.audit.errors import InvalidAuditCursor, InvalidAuditEvent
from bastion.audit.events import Outcome, chain_for
from bastion.audit.service import AuditLog

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 200
_CURSOR_VERSION: Final = "v1"


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every given criterion must hold. ``actor_user_id`` is pseudonymised before matching;
    ``action`` ending in ``.`` matches a prefix (``member.`` → every member action)."""

    actor_user_id: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One event as readers see it (the chain fields included, for export and cross-checks)."""

    chain: str
    seq: int
    time: str
    tenant_id: str | None
    actor: str | None
    action: str
    target: str | None
    outcome: str
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: tuple[AuditRecord, ...]
    next_cursor: str | None


def encode_cursor(chain: str, seq: int) -> str:
    raw = f"{_CURSOR_VERSION}:{chain}:{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, chain: str) -> int:
    """The sequence number to continue below; InvalidAuditCursor if not ours or another chain's."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        version, cursor_chain, seq_text = raw.split(":")
        seq = int(seq_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidAuditCursor from None
    if version != _CURSOR_VERSION or cursor_chain != chain or seq < 1:
        raise InvalidAuditCursor
    return seq


class AuditQuery:
    """Newest-first pages of one chain. Read-only; runs in the caller's session."""

    def __init__(self, *, audit_log: AuditLog) -> None:
        self._log = audit_log

    def search(
        self,
        session: Session,
        tenant_id: str | None,
        filters: AuditFilter | None = None,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> AuditPage:
        """A page of ``tenant_id``'s events (None: the system chain), newest first.

        ``limit`` is clamped to 1..200. Raises InvalidAuditCursor for a cursor not issued for this
        chain, InvalidAuditEvent for a malformed tenant id.
        """
        chain = chain_for(tenant_id)
        size = max(1, min(limit, MAX_PAGE_SIZE))
        events = repository.EVENTS
        statement = select(events).where(events.c.chain_id == chain)
        if cursor is not None:
            statement = statement.where(events.c.seq < decode_cursor(cursor, chain))
        statement = self._filtered(statement, filters or AuditFilter())
        rows = session.execute(statement.order_by(events.c.seq.desc()).limit(size + 1)).all()
        items = tuple(_record(row) for row in rows[:size])
        next_cursor = encode_cursor(chain, items[-1].seq) if len(rows) > size else None
        return AuditPage(items=items, next_cursor=next_cursor)

    def _filtered(self, statement: Select[Any], filters: AuditFilter) -> Select[Any]:
        events = repository.EVENTS
        if filters.actor_user_id is not None:
            statement = statement.where(
                events.c.actor == self._log.pseudonym_for(filters.actor_user_id)
            )
        if filters.action is not None:
            if filters.action.endswith("."):
                prefix = filters.action.replace("\\", "").replace("%", "").replace("_", "\\_")
                statement = statement.where(events.c.action.like(prefix + "%", escape="\\"))
            else:
                statement = statement.where(events.c.action == filters.action)
        if filters.target is not None:
            statement = statement.where(events.c.target == filters.target)
        if filters.outcome is not None:
            statement = statement.where(events.c.outcome == Outcome(filters.outcome).value)
        # Canonical times are fixed-width UTC text: string order is time order.
        if filters.since is not None:
            statement = statement.where(events.c.occurred_at >= _time(filters.since))
        if filters.until is not None:
            statement = statement.where(events.c.occurred_at < _time(filters.until))
        return statement


def _time(moment: datetime) -> str:
    try:
        return format_time(moment)
    except ValueError:
        raise InvalidAuditEvent("time filters must be timezone-aware") from None


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        chain=row.chain_id,
        seq=int(row.seq),
        time=row.occurred_at,
        tenant_id=row.tenant_id,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        source_ip=row.source_ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
