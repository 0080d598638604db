"""Access reviews: who can reach a tenant, how, and what has gone unused (ASVS 5.0 V8.1.x).

One review lists every member (address, role, custom role, second-factor status, last login)
and every API key that is not revoked (permissions, expiry, last use), and flags as *stale* any
entry with no use for ``STALE_AFTER`` (a member counts from their last session activity, a key
from its last use; neither before it existed). Reading a review is itself audited on the
tenant's chain (``access_review.read``): it is a list of personal data.

Exports: ``as_json`` and ``as_csv`` (one row per member and per key, cells that a spreadsheet
would run as a formula neutralised).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.access import recording, repository
from bastion.access.errors import TenantNotFound
from bastion.access.models import ApiKeyRow, MembershipRow, TenantRow
from bastion.access.types import AccessAction
from bastion.audit import AuditLog
from bastion.audit.events import JsonValue
from bastion.identity import ClientInfo
from bastion.identity.directory import UserFacts
from bastion.kernel.clock import Clock, as_utc

STALE_AFTER: Final = timedelta(days=90)
MAX_ENTRIES: Final = 10_000
_PAGE: Final = 500
# Cells starting with these run as formulas in spreadsheet software (OWASP "CSV injection").
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

CSV_COLUMNS: Final = (
    "kind",
    "user_id",
    "email",
    "role",
    "custom_role",
    "second_factor",
    "disabled",
    "joined_at",
    "last_login_at",
    "last_used_at",
    "key_id",
    "key_name",
    "key_permissions",
    "key_expires_at",
    "stale",
)


class MemberDirectory(Protocol):
    """Identity's answer about accounts (``identity.directory.SqlUserDirectory``)."""

    def facts(self, session: Session, user_ids: Iterable[str]) -> Mapping[str, UserFacts]: ...


@dataclass(frozen=True, slots=True)
class ReviewedKey:
    id: str
    name: str
    tail: str
    user_id: str
    permissions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    expired: bool
    stale: bool


@dataclass(frozen=True, slots=True)
class ReviewedMember:
    user_id: str
    email: str | None
    role: str
    custom_role: str | None
    has_second_factor: bool
    disabled: bool
    joined_at: datetime
    last_login_at: datetime | None
    last_seen_at: datetime | None
    stale: bool


@dataclass(frozen=True, slots=True)
class AccessReview:
    tenant_id: str
    tenant_slug: str
    generated_at: datetime
    stale_after_days: int
    members: tuple[ReviewedMember, ...]
    api_keys: tuple[ReviewedKey, ...]


class AccessReviews:
    """Builds (and audits) access reviews; read-only apart from the audit entry."""

    def __init__(self, *, directory: MemberDirectory, audit_log: AuditLog, clock: Clock) -> None:
        self._directory = directory
        self._audit = audit_log
        self._clock = clock

    def review(
        self,
        session: Session,
        *,
        tenant_ref: str,
        actor: str | None,
        client: ClientInfo,
        export_format: str,
    ) -> AccessReview:
        """The review of the tenant named by id or slug. The API passes the caller's resolved
        tenant id (membership and permission already checked); the CLI, run by whoever runs
        the server, passes what the operator typed. TenantNotFound (404) otherwise."""
        tenant = repository.tenant_by_ref(session, tenant_ref)
        if tenant is None:
            raise TenantNotFound
        review = self._build(session, tenant)
        recording.record(
            self._audit,
            session,
            tenant.id,
            AccessAction.ACCESS_REVIEW_READ,
            actor=actor,
            target=tenant.id,
            client=client,
            details={
                "format": export_format,
                "members": len(review.members),
                "api_keys": len(review.api_keys),
            },
        )
        return review

    def _build(self, session: Session, tenant: TenantRow) -> AccessReview:
        now = self._clock.now()
        memberships = list(
            session.scalars(
                select(MembershipRow)
                .where(MembershipRow.tenant_id == tenant.id)
                .order_by(MembershipRow.user_id)
                .limit(MAX_ENTRIES)
            )
        )
        names = repository.custom_role_names(session, tenant.id)
        facts: dict[str, UserFacts] = {}
        for start in range(0, len(memberships), _PAGE):
            page = memberships[start : start + _PAGE]
            facts.update(self._directory.facts(session, [m.user_id for m in page]))
        members = tuple(_member(m, facts.get(m.user_id), names, now) for m in memberships)
        keys = session.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.tenant_id == tenant.id, ApiKeyRow.revoked_at.is_(None))
            .order_by(ApiKeyRow.user_id, ApiKeyRow.id)
            .limit(MAX_ENTRIES)
        )
        return AccessReview(
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            generated_at=now,
            stale_after_days=STALE_AFTER.days,
            members=members,
            api_keys=tuple(_key(row, now) for row in keys),
        )


def _is_stale(last_use: datetime | None, since: datetime, now: datetime) -> bool:
    reference = max(last_use, since) if last_use is not None else since
    return reference + STALE_AFTER <= now


def _member(
    row: MembershipRow, facts: UserFacts | None, names: Mapping[str, str], now: datetime
) -> ReviewedMember:
    joined = as_utc(row.created_at)
    seen = None
    if facts is not None:
        times = [t for t in (facts.last_login_at, facts.last_seen_at) if t is not None]
        seen = max(times) if times else None
    return ReviewedMember(
        user_id=row.user_id,
        email=None if facts is None else facts.email,
        role=row.role,
        custom_role=None if row.custom_role_id is None else names.get(row.custom_role_id),
        has_second_factor=facts is not None and facts.has_second_factor,
        disabled=facts is None or facts.disabled,
        joined_at=joined,
        last_login_at=None if facts is None else facts.last_login_at,
        last_seen_at=seen,
        stale=_is_stale(seen, joined, now),
    )


def _key(row: ApiKeyRow, now: datetime) -> ReviewedKey:
    created = as_utc(row.created_at)
    last_used = None if row.last_used_at is None else as_utc(row.last_used_at)
    expires = as_utc(row.expires_at)
    return ReviewedKey(
        id=row.id,
        name=row.name,
        tail=row.tail,
        user_id=row.user_id,
        permissions=tuple(sorted(str(p) for p in row.permissions)),
        created_at=created,
        expires_at=expires,
        last_used_at=last_used,
        expired=expires <= now,
        stale=_is_stale(last_used, created, now),
    )


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def as_json(review: AccessReview) -> dict[str, JsonValue]:
    """The review as a JSON-ready mapping (times in UTC ISO 8601 with ``Z``)."""
    return {
        "tenant": {"id": review.tenant_id, "slug": review.tenant_slug},
        "generated_at": _time(review.generated_at),
        "stale_after_days": review.stale_after_days,
        "members": [
            {
                "user_id": m.user_id,
                "email": m.email,
                "role": m.role,
                "custom_role": m.custom_role,
                "second_factor": m.has_second_factor,
                "disabled": m.disabled,
                "joined_at": _time(m.joined_at),
                "last_login_at": _time(m.last_login_at),
                "last_seen_at": _time(m.last_seen_at),
                "stale": m.stale,
            }
            for m in review.members
        ],
        "api_keys": [
            {
                "id": k.id,
                "name": k.name,
                "tail": k.tail,
                "user_id": k.user_id,
                "permissions": list(k.permissions),
                "created_at": _time(k.created_at),
                "expires_at": _time(k.expires_at),
                "last_used_at": _time(k.last_used_at),
                "expired": k.expired,
                "stale": k.stale,
            }
            for k in review.api_keys
        ],
    }


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = _time(value) if isinstance(value, datetime) else str(value)
    text = text or ""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def as_csv(review: AccessReview) -> str:
    """The review as CSV: a header, one ``member`` row per member, one ``api_key`` row per key."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    emails = {m.user_id: m.email for m in review.members}
    for m in review.members:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    "member",
                    m.user_id,
                    m.email,
                    m.role,
                    m.custom_role,
                    m.has_second_factor,
                    m.disabled,
                    m.joined_at,
                    m.last_login_at,
                    m.last_seen_at,
                    None,
                    None,
                    None,
                    None,
                    m.stale,
                )
            ]
        )
    for k in review.api_keys:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    "api_key",
                    k.user_id,
                    emails.get(k.user_id),
                    None,
                    None,
                    None,
                    None,
                    k.created_at,
                    None,
                    k.last_used_at,
                    k.id,
                    k.name,
                    " ".join(k.permissions),
                    k.expires_at,
                    k.stale,
                )
            ]
        )
    return buffer.getvalue()
