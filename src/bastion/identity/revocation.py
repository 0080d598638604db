"""Credentials that other domains hold for a user and that must die with the user's sessions.

Identity decides *when* everything a user holds is revoked (password reset, account disable,
"revoke all", "this wasn't me"); it cannot know the other domains' credentials (tenant API keys
live in access, which depends on identity, not the other way round). So it calls every
``CredentialRevoker`` it was built with, in the same transaction as the sessions' revocation:
nothing is left working once the call returns (DESIGN invariant 3).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from bastion.identity.types import ClientInfo


class CredentialRevoker(Protocol):
    """Revokes, in the caller's transaction, every credential of ``user_id`` it owns, audits
    that in its own terms, and returns how many it revoked. ``reason`` is a short machine word
    (``password_reset``, ``user_disabled``, ``sessions_revoked``, ``compromise_reported``)."""

    def revoke_user_credentials(
        self,
        session: Session,
        *,
        user_id: str,
        now: datetime,
        reason: str,
        actor_user_id: str | None,
        client: ClientInfo,
    ) -> int: ...


__all__ = ["CredentialRevoker"]
