"""The first-operator bootstrap link (as Keycloak's initial admin, Vault's root-token generation).

On the very first start Bastion issues one single-use token, valid for an hour, and prints a link
holding it. Only its SHA-256 is stored. Issuing a new link (``bastion bootstrap``) revokes older
ones. Redeeming the token (``Identity.create_first_operator``) creates the first operator account.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bastion.identity.errors import BootstrapTokenInvalid
from bastion.identity.models import BootstrapToken
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id, new_token, token_digest

BOOTSTRAP_TOKEN_LIFETIME = timedelta(hours=1)
BOOTSTRAP_PATH = "/bootstrap"


@dataclass(frozen=True, slots=True)
class IssuedLink:
    token: str
    expires_at: datetime


class FirstOperatorBootstrap:
    """Issues and checks bootstrap tokens inside the caller's session (the caller commits)."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock

    def issue_if_first_start(self, session: Session) -> IssuedLink | None:
        """Issue a link only if none was ever issued: only the first start prints one."""
        if session.scalar(select(func.count()).select_from(BootstrapToken)):
            return None
        return self.issue(session)

    def issue(self, session: Session) -> IssuedLink:
        """A new link; every earlier unused link stops working."""
        now = self._clock.now()
        session.execute(
            update(BootstrapToken)
            .where(BootstrapToken.used_at.is_(None), BootstrapToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        token = new_token()
        expires_at = now + BOOTSTRAP_TOKEN_LIFETIME
        session.add(
            BootstrapToken(
                id=new_id(),
                token_hash=token_digest(token),
                created_at=now,
                expires_at=expires_at,
            )
        )
        session.flush()
        return IssuedLink(token=token, expires_at=expires_at)

    def check(self, session: Session, token: str) -> BootstrapToken:
        """The live token row for ``token``, or BootstrapTokenInvalid."""
        digest = token_digest(token)
        row = session.scalar(select(BootstrapToken).where(BootstrapToken.token_hash == digest))
        if (
            row is None
            or not hmac.compare_digest(row.token_hash, digest)
            or row.used_at is not None
            or row.revoked_at is not None
            or as_utc(row.expires_at) <= self._clock.now()
        ):
            raise BootstrapTokenInvalid
        return row

    def redeem(self, session: Session, token: str) -> None:
        """Mark the token used; a second redemption fails. Called by first-operator creation.

        The conditional UPDATE makes two concurrent redemptions safe: only one matches the
        unused row; the other gets BootstrapTokenInvalid.
        """
        row = self.check(session, token)
        result = session.execute(
            update(BootstrapToken)
            .where(BootstrapToken.id == row.id, BootstrapToken.used_at.is_(None))
            .values(used_at=self._clock.now())
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            raise BootstrapTokenInvalid
