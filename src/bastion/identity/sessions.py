"""Login sessions: opaque tokens checked against the store on every request.

- A token is 256 random bits (``kernel.ids.new_token``); only its SHA-256 is stored, so a database
  leak yields no usable session. Every login makes a new one (no fixation).
- Each request looks the session up (no cache: revocation is immediate across processes) and
  enforces the idle timeout and the absolute lifetime from settings.
- ``last_seen_at`` is written at most every ``touch_interval`` (a tenth of the idle timeout,
  at most a minute): a durable write per request would cap throughput at the disk's fsync rate
  (PERF-NOTES), and the idle deadline moves by at most that much.
- Each session also has a CSRF token (synchronizer pattern): its SHA-256 is stored beside the
  session, and cookie-authenticated unsafe requests must echo the token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from bastion.db.session import defer_until_commit
from bastion.identity.errors import CsrfCheckFailed, NotAuthenticated
from bastion.identity.factors import has_second_factor
from bastion.identity.models import USER_AGENT_CHARS, AuthSession, User
from bastion.identity.types import ClientInfo, IssuedSession, Principal, SessionId, UserId
from bastion.kernel.clock import as_utc
from bastion.kernel.ids import new_id, new_token, token_digest

MAX_TOUCH_INTERVAL = timedelta(minutes=1)
# Opaque tokens from new_token() are 43 characters; anything much longer is not ours.
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_timeout: timedelta
    absolute_lifetime: timedelta

    @property
    def touch_interval(self) -> timedelta:
        return min(MAX_TOUCH_INTERVAL, self.idle_timeout / 10)


def issue(
    session: Session,
    *,
    user_id: str,
    client: ClientInfo,
    now: datetime,
    policy: SessionPolicy,
    with_mfa: bool = False,
) -> IssuedSession:
    """A new session for ``user_id`` (the caller has authenticated them; ``with_mfa`` if a
    second factor was part of it)."""
    token = new_token()
    csrf_token = new_token()
    session_id = new_id()
    expires_at = now + policy.absolute_lifetime
    # Pending ORM writes of the caller (a new password's rows) go first, as a flush would.
    session.flush()
    session.connection().execute(
        _INSERT,
        {
            "id": session_id,
            "user_id": user_id,
            "token_hash": token_digest(token),
            "csrf_hash": token_digest(csrf_token),
            "created_at": now,
            "last_seen_at": now,
            "expires_at": expires_at,
            "revoked_at": None,
            "mfa_at": now if with_mfa else None,
            "mfa_failures": 0,
            "ip": client.ip,
            "user_agent": (client.user_agent or None) and client.user_agent[:USER_AGENT_CHARS],
        },
    )
    return IssuedSession(
        id=SessionId(session_id),
        user_id=UserId(user_id),
        token=token,
        csrf_token=csrf_token,
        expires_at=expires_at,
        idle_expires_at=min(expires_at, now + policy.idle_timeout),
    )


# Every login inserts one row: a Core INSERT built once (an ORM unit-of-work flush of one new
# entity cost several times the statement itself).
_INSERT: Final = insert(cast(Table, AuthSession.__table__))


class _SessionTimes(Protocol):
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def last_seen_at(self) -> datetime: ...


def is_live(row: _SessionTimes, *, now: datetime, policy: SessionPolicy) -> bool:
    return (
        row.revoked_at is None
        and as_utc(row.expires_at) > now
        and as_utc(row.last_seen_at) + policy.idle_timeout > now
    )


# Every request runs this lookup: the session and its user in one row, as plain columns (a
# SQLAlchemy Core statement built once). Loading two ORM entities per request cost more CPU
# than the SQLite query itself (bench/bench_records.py); nothing here is changed through them.
_SESSIONS = AuthSession.__table__
_USERS = User.__table__
_LOOKUP: Final = (
    select(
        _SESSIONS.c.id,
        _SESSIONS.c.user_id,
        _SESSIONS.c.token_hash,
        _SESSIONS.c.csrf_hash,
        _SESSIONS.c.revoked_at,
        _SESSIONS.c.expires_at,
        _SESSIONS.c.last_seen_at,
        _USERS.c.disabled_at,
        _USERS.c.is_operator,
    )
    .select_from(_SESSIONS.join(_USERS, _USERS.c.id == _SESSIONS.c.user_id))
    .where(_SESSIONS.c.token_hash == bindparam("token_hash"))
)


def authenticate(
    session: Session,
    *,
    token: str,
    now: datetime,
    policy: SessionPolicy,
    via_cookie: bool,
    csrf_token: str | None = None,
    require_csrf: bool = False,
) -> Principal:
    """The principal behind ``token``, or NotAuthenticated (unknown, expired, revoked, disabled).

    With ``require_csrf`` (a cookie-authenticated unsafe request), ``csrf_token`` must match the
    session's, or CsrfCheckFailed. Comparisons of secret-derived values are constant-time.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise NotAuthenticated
    digest = token_digest(token)
    row = session.connection().execute(_LOOKUP, {"token_hash": digest}).one_or_none()
    if row is None:
        raise NotAuthenticated
    if (
        not hmac.compare_digest(row.token_hash, digest)
        or not is_live(row, now=now, policy=policy)
        or row.disabled_at is not None
    ):
        raise NotAuthenticated
    if require_csrf and (
        csrf_token is None
        or len(csrf_token) > MAX_TOKEN_CHARS
        or not hmac.compare_digest(row.csrf_hash, token_digest(csrf_token))
    ):
        raise CsrfCheckFailed
    if now - as_utc(row.last_seen_at) >= policy.touch_interval:
        touch = update(AuthSession).where(AuthSession.id == row.id).values(last_seen_at=now)
        defer_until_commit(session, touch)
    return Principal(
        user_id=UserId(row.user_id),
        session_id=SessionId(row.id),
        is_operator=row.is_operator,
        via_cookie=via_cookie,
        # One more primary-key read, for operators only.
        must_enrol_mfa=row.is_operator and not has_second_factor(session, row.user_id),
    )


def mark_mfa(session: Session, session_id: str, now: datetime) -> None:
    """Record that a second factor was just proved in this session (step-up)."""
    row = session.get(AuthSession, session_id)
    if row is not None:
        row.mfa_at = now
        session.flush()


def has_recent_mfa(session: Session, session_id: str, *, now: datetime, within: timedelta) -> bool:
    row = session.get(AuthSession, session_id)
    return row is not None and row.mfa_at is not None and as_utc(row.mfa_at) + within > now


def count_mfa_failure(session: Session, session_id: str, *, now: datetime, limit: int) -> bool:
    """Count a wrong second-factor code in this session; True if that revoked the session."""
    row = session.get(AuthSession, session_id)
    if row is None:
        return False
    row.mfa_failures += 1
    revoked = row.mfa_failures >= limit
    if revoked:
        row.revoked_at = now
    session.flush()
    return revoked
