"""Password flows of ``SqlIdentity``: change (with the current password), forgotten-password
e-mail, and reset with the e-mailed token. Each ends every session of the user."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bastion.identity import messages, repository, sessions, tokens
from bastion.identity.base import IdentityBase
from bastion.identity.errors import (
    CurrentPasswordWrong,
    TokenInvalid,
    UserNotFound,
)
from bastion.identity.events import EventOutcome
from bastion.identity.types import (
    ClientInfo,
    IdentityAction,
    IssuedSession,
    Principal,
    TokenPurpose,
)
from bastion.kernel.ids import new_token


class PasswordFlows(IdentityBase):
    """Change, forgotten-password mail and reset; mixed into ``SqlIdentity``."""

    def change_password(
        self,
        session: Session,
        *,
        principal: Principal,
        current_password: str,
        new_password: str,
        client: ClientInfo,
    ) -> IssuedSession:
        """Change the password given the current one; every session ends and a new one starts.

        Raises CurrentPasswordWrong or a PasswordRejected subclass (nothing changes then).
        """
        user = repository.user_by_id(session, principal.user_id, for_update=True)
        if user is None:
            raise UserNotFound
        if not self._hasher.verify(user.password_hash, current_password):
            raise CurrentPasswordWrong(field="current_password")
        self._set_password(session, user, new_password)
        now = self._clock.now()
        killed = repository.revoke_all_sessions(session, user.id, now)
        issued = sessions.issue(
            session, user_id=user.id, client=client, now=now, policy=self._sessions
        )
        self._record(
            session,
            IdentityAction.PASSWORD_CHANGED,
            client,
            actor=user.id,
            target=user.id,
            details={"sessions_revoked": killed},
        )
        return issued

    def request_password_reset(self, session: Session, *, email: str, client: ClientInfo) -> None:
        """Queue a reset link if the address has an active account; silent otherwise.

        The caller answers the same whatever happens here (no enumeration). The mail is only
        queued (mail.queue): SMTP is never touched in the request, so a mail outage cannot fail
        or slow it. An unknown or disabled address is audited as a refused request: besides
        recording it, that makes both answers commit a write (on SQLite the commit's fsync is
        most of the request's time), so their timing stays close.
        """
        user = self._find_for_login(session, email)
        if user is None or user.disabled_at is not None:
            self._record(
                session,
                IdentityAction.PASSWORD_RESET_REQUESTED,
                client,
                target=user.id if user is not None else None,
                outcome=EventOutcome.FAILURE,
                details={"reason": "unknown_account" if user is None else "disabled"},
            )
            return
        now = self._clock.now()
        token = new_token()
        # Sealed before this transaction's first write (SQLite: see mail.queue).
        prepared = self._outbox.prepare(
            messages.password_reset(
                to=self._email_of(user),
                name=user.name,
                base_url=self._base_url,
                token=token,
                minutes=self._settings.password_reset_lifetime_seconds // 60,
            ),
            now=now,
        )
        tokens.issue(
            session,
            user_id=user.id,
            purpose=TokenPurpose.RESET_PASSWORD,
            now=now,
            lifetime=timedelta(seconds=self._settings.password_reset_lifetime_seconds),
            token=token,
        )
        self._outbox.enqueue(session, prepared, now=now)
        self._record(session, IdentityAction.PASSWORD_RESET_REQUESTED, client, target=user.id)

    def reset_password(
        self, session: Session, *, token: str, password: str, client: ClientInfo
    ) -> None:
        """Set a new password with a reset token; every session of the user ends.

        Raises TokenInvalid or a PasswordRejected subclass; the token is consumed only on
        success (the transaction rolls back otherwise).
        """
        now = self._clock.now()
        row = tokens.redeem(session, token=token, purpose=TokenPurpose.RESET_PASSWORD, now=now)
        user = repository.user_by_id(session, row.user_id, for_update=True)
        if user is None or user.disabled_at is not None:
            raise TokenInvalid
        self._set_password(session, user, password)
        # Receiving the link proves control of the mailbox.
        if user.email_verified_at is None:
            user.email_verified_at = now
        killed, keys = self._revoke_everything(
            session, user.id, now, reason="password_reset", actor=user.id, client=client
        )
        self._record(
            session,
            IdentityAction.PASSWORD_RESET,
            client,
            actor=user.id,
            target=user.id,
            details={"sessions_revoked": killed, "api_keys_revoked": keys},
        )
