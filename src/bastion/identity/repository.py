"""Identity queries. Only the identity service calls these; they never commit.

Users are not tenant-owned (a user may belong to several tenants through memberships, which the
access domain owns), so these queries carry no tenant predicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from bastion.identity.factors import passkey_enrolled, totp_enrolled
from bastion.identity.models import AuthSession, EmailToken, MfaChallenge, PasswordHistory, User


@dataclass(frozen=True, slots=True)
class LoginAccount:
    """What a password login (and a forgotten-password request) reads about an account."""

    id: str
    email_sealed: bytes = field(repr=False)
    name: str | None = field(repr=False)
    password_hash: str = field(repr=False)
    password_changed_at: datetime
    disabled_at: datetime | None
    has_totp: bool
    has_passkey: bool


# Every login runs this: the account and its enrolled second factors in one row, as plain
# columns (a Core statement built once). Loading a User entity and asking for the factors in
# a second statement cost more CPU than the rest of the login's queries together.
_USERS = cast(Table, User.__table__)
_LOGIN_ACCOUNT: Final = select(
    _USERS.c.id,
    _USERS.c.email_sealed,
    _USERS.c.name,
    _USERS.c.password_hash,
    _USERS.c.password_changed_at,
    _USERS.c.disabled_at,
    totp_enrolled(_USERS.c.id).label("has_totp"),
    passkey_enrolled(_USERS.c.id).label("has_passkey"),
).where(_USERS.c.email_index == bindparam("email_index"))
_SET_PASSWORD_HASH: Final = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("user_id"))
    .values(password_hash=bindparam("new_hash"))
)


def login_account(session: Session, email_index: bytes) -> LoginAccount | None:
    """The account with this blind index and its factors, in one indexed read; None if none."""
    row = session.connection().execute(_LOGIN_ACCOUNT, {"email_index": email_index}).one_or_none()
    if row is None:
        return None
    return LoginAccount(
        id=row.id,
        email_sealed=row.email_sealed,
        name=row.name,
        password_hash=row.password_hash,
        password_changed_at=row.password_changed_at,
        disabled_at=row.disabled_at,
        has_totp=bool(row.has_totp),
        has_passkey=bool(row.has_passkey),
    )


def set_password_hash(session: Session, user_id: str, password_hash: str) -> None:
    """Replace the stored hash (an upgrade to the current parameters: same password)."""
    session.connection().execute(
        _SET_PASSWORD_HASH, {"user_id": user_id, "new_hash": password_hash}
    )


def user_by_email_index(session: Session, email_index: bytes) -> User | None:
    return session.scalar(select(User).where(User.email_index == email_index))


def user_by_id(session: Session, user_id: str, *, for_update: bool = False) -> User | None:
    query = select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def account_is_active(session: Session, user_id: str) -> bool:
    """True when the account exists and is not disabled (one primary-key read)."""
    disabled_at = session.execute(select(User.disabled_at).where(User.id == user_id)).first()
    return disabled_at is not None and disabled_at[0] is None


def operator_exists(session: Session) -> bool:
    count = session.scalar(select(func.count()).select_from(User).where(User.is_operator))
    return bool(count)


def recent_password_hashes(session: Session, user_id: str, limit: int) -> Sequence[str]:
    if limit <= 0:
        return []
    return session.scalars(
        select(PasswordHistory.password_hash)
        .where(PasswordHistory.user_id == user_id)
        .order_by(PasswordHistory.id.desc())
        .limit(limit)
    ).all()


def prune_password_history(session: Session, user_id: str, keep: int) -> None:
    kept = select(PasswordHistory.id).where(PasswordHistory.user_id == user_id)
    kept = kept.order_by(PasswordHistory.id.desc())
    keep_ids = list(session.scalars(kept.limit(max(keep, 1))).all())
    session.execute(
        delete(PasswordHistory).where(
            PasswordHistory.user_id == user_id, PasswordHistory.id.not_in(keep_ids)
        )
    )


def session_and_user_by_token_hash(
    session: Session, token_hash: bytes
) -> tuple[AuthSession, User] | None:
    """The session behind a token hash with its user, in one round trip (every request
    authenticates); None when either is missing."""
    found = session.execute(
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .where(AuthSession.token_hash == token_hash)
    ).one_or_none()
    return None if found is None else (found[0], found[1])


def live_sessions(session: Session, user_id: str, now: datetime) -> Sequence[AuthSession]:
    """Sessions not revoked and within their absolute lifetime (idle expiry checked by caller)."""
    return session.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
        .order_by(AuthSession.created_at.desc(), AuthSession.id)
    ).all()


def revoke_session(session: Session, user_id: str, session_id: str, now: datetime) -> bool:
    """Revoke one of ``user_id``'s sessions; False if it is not theirs or already dead."""
    result = session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def revoke_all_sessions(session: Session, user_id: str, now: datetime) -> int:
    """End every session of ``user_id``, every half-finished MFA login (so a challenge opened
    with an old password cannot complete after a reset) and every pending e-mail change (so a
    hijacker's change dies with the reset the notice advises). Returns the sessions ended."""
    retire_email_tokens(session, user_id, "change_email", now)
    session.execute(
        update(MfaChallenge)
        .where(MfaChallenge.user_id == user_id, MfaChallenge.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def email_token_by_hash(session: Session, token_hash: bytes) -> EmailToken | None:
    return session.scalar(select(EmailToken).where(EmailToken.token_hash == token_hash))


def retire_email_tokens(session: Session, user_id: str, purpose: str, now: datetime) -> None:
    """Mark every unused token of ``purpose`` used: only the newest link ever works."""
    session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
