"""What other domains may know about accounts for access governance, through one object.

``SqlUserDirectory`` answers the access domain's two questions without handing it identity's
tables: does this user have a confirmed second factor (a tenant that requires MFA asks on every
request), and, for an access review, each member's address, second-factor status and last
login. Addresses are opened from their sealed form here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.identity import factors, keys, repository
from bastion.identity.emails import normalise_email
from bastion.identity.errors import InvalidEmail
from bastion.identity.keys import SystemKeys
from bastion.identity.models import AuthSession, TotpCredential, User, WebAuthnCredential
from bastion.kernel.clock import as_utc

# Bounded: one access review asks about one page of members at a time.
MAX_USERS_PER_CALL = 1000


@dataclass(frozen=True, slots=True)
class UserFacts:
    """An account as an access review shows it. ``last_login_at``: the newest session's start;
    ``last_seen_at``: the newest session activity (touched at most every few minutes)."""

    user_id: str
    email: str
    is_operator: bool
    disabled: bool
    has_second_factor: bool
    last_login_at: datetime | None
    last_seen_at: datetime | None


class SqlUserDirectory:
    """Read-only facts about accounts; runs in the caller's transaction."""

    def __init__(self, *, keys: SystemKeys) -> None:
        self._keys = keys

    def has_second_factor(self, session: Session, user_id: str) -> bool:
        """True when the user has a confirmed TOTP app or a passkey (``identity.factors``
        decides, as for login and step-up)."""
        return factors.has_second_factor(session, user_id)

    def user_id_for_email(self, session: Session, email: str) -> str | None:
        """The id of the account with this address, or None (also for a malformed address)."""
        try:
            address = normalise_email(email)
        except InvalidEmail:
            return None
        user = repository.user_by_email_index(session, keys.email_index(self._keys, address))
        return None if user is None else user.id

    def facts(self, session: Session, user_ids: Iterable[str]) -> Mapping[str, UserFacts]:
        """Facts for each existing user among ``user_ids`` (at most MAX_USERS_PER_CALL)."""
        wanted = list(dict.fromkeys(user_ids))[:MAX_USERS_PER_CALL]
        if not wanted:
            return {}
        users = session.scalars(select(User).where(User.id.in_(wanted)))
        confirmed = set(
            session.scalars(
                select(TotpCredential.user_id).where(
                    TotpCredential.user_id.in_(wanted), TotpCredential.confirmed_at.is_not(None)
                )
            )
        ) | set(
            session.scalars(
                select(WebAuthnCredential.user_id).where(WebAuthnCredential.user_id.in_(wanted))
            )
        )
        activity = {
            user_id: (first, last)
            for user_id, first, last in session.execute(
                select(
                    AuthSession.user_id,
                    func.max(AuthSession.created_at),
                    func.max(AuthSession.last_seen_at),
                )
                .where(AuthSession.user_id.in_(wanted))
                .group_by(AuthSession.user_id)
            )
        }
        found: dict[str, UserFacts] = {}
        for user in users:
            login, seen = activity.get(user.id, (None, None))
            found[user.id] = UserFacts(
                user_id=user.id,
                email=keys.open_email(self._keys, user.id, user.email_sealed),
                is_operator=user.is_operator,
                disabled=user.disabled_at is not None,
                has_second_factor=user.id in confirmed,
                last_login_at=None if login is None else as_utc(login),
                last_seen_at=None if seen is None else as_utc(seen),
            )
        return found
