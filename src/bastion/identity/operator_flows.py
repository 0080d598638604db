"""Operator flows of ``SqlIdentity``: acting on another user's account (staff only; the edge
checks that the caller is an operator with a second factor before calling)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bastion.identity import repository
from bastion.identity.base import IdentityBase
from bastion.identity.emails import normalise_email
from bastion.identity.errors import InvalidEmail, UserNotFound
from bastion.identity.models import User
from bastion.identity.types import ClientInfo, IdentityAction, RevokedCredentials

MAX_USER_REF_CHARS = 254


class OperatorFlows(IdentityBase):
    """Ending another user's sessions; mixed into ``SqlIdentity``."""

    def revoke_user_sessions(
        self, session: Session, *, user: str, actor_user_id: str | None, client: ClientInfo
    ) -> RevokedCredentials:
        """End every session of ``user`` (an id or an e-mail address), every half-finished
        login and every credential other domains hold for them (API keys), before returning;
        audited on the system chain. Idempotent.

        Raises UserNotFound (an operator action: existence is not a secret here).
        """
        target = self._user_by_ref(session, user)
        sessions, credentials = self._revoke_everything(
            session,
            target.id,
            self._clock.now(),
            reason="revoked_by_operator",
            actor=actor_user_id,
            client=client,
        )
        self._record(
            session,
            IdentityAction.USER_SESSIONS_REVOKED,
            client,
            actor=actor_user_id,
            target=target.id,
            details={"sessions_revoked": sessions, "api_keys_revoked": credentials},
        )
        return RevokedCredentials(sessions=sessions, other_credentials=credentials)

    def _user_by_ref(self, session: Session, ref: str) -> User:
        ref = ref.strip()
        if not ref or len(ref) > MAX_USER_REF_CHARS:
            raise UserNotFound
        if "@" in ref:
            try:
                found = self._user_by_email(session, normalise_email(ref))
            except InvalidEmail:
                raise UserNotFound from None
        else:
            found = repository.user_by_id(session, ref)
        if found is None:
            raise UserNotFound
        return found
