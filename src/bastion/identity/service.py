"""The identity service: accounts, passwords, sessions, e-mailed tokens, the first operator.

``Identity`` is the interface other packages and the edges use; ``SqlIdentity`` implements it
over SQLAlchemy. Every method runs inside the caller's transaction (the edge commits), records an
audit event for each state change, and is synchronous on purpose: password hashing must run off
the event loop (see ``passwords``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.identity import factors, keys, messages, repository, sessions, tokens
from bastion.identity.emails import normalise_email
from bastion.identity.errors import (
    AlreadyBootstrapped,
    CurrentPasswordWrong,
    EmailTaken,
    MfaRequired,
    SessionNotFound,
    SignupClosed,
    TokenInvalid,
    UserNotFound,
)
from bastion.identity.guard import Admission, SignedIn
from bastion.identity.models import EmailToken, User
from bastion.identity.operator_flows import OperatorFlows
from bastion.identity.passkey_flows import PasskeyFlows
from bastion.identity.password_flows import PasswordFlows
from bastion.identity.types import (
    Account,
    ClientInfo,
    IdentityAction,
    IssuedSession,
    PasskeyInfo,
    Principal,
    RevokedCredentials,
    SessionId,
    SessionInfo,
    TokenPurpose,
    TotpEnrolment,
)
from bastion.kernel.clock import as_utc
from bastion.kernel.ids import new_id


class Identity(Protocol):
    """Accounts and sessions. Security-sensitive parameters are keyword-only."""

    def signup(
        self, session: Session, *, email: str, password: str, name: str | None, client: ClientInfo
    ) -> Account: ...
    def verify_email(self, session: Session, *, token: str, client: ClientInfo) -> None: ...
    def login(
        self, session: Session, *, email: str, password: str, client: ClientInfo
    ) -> IssuedSession: ...
    def authenticate(
        self,
        session: Session,
        *,
        token: str,
        via_cookie: bool,
        csrf_token: str | None = None,
        require_csrf: bool = False,
    ) -> Principal: ...
    def logout(self, session: Session, *, principal: Principal, client: ClientInfo) -> None: ...
    def account(self, session: Session, *, principal: Principal) -> Account: ...
    def request_email_change(
        self,
        session: Session,
        *,
        principal: Principal,
        new_email: str,
        password: str,
        client: ClientInfo,
    ) -> None: ...
    def change_password(
        self,
        session: Session,
        *,
        principal: Principal,
        current_password: str,
        new_password: str,
        client: ClientInfo,
    ) -> IssuedSession: ...
    def request_password_reset(
        self, session: Session, *, email: str, client: ClientInfo
    ) -> None: ...
    def reset_password(
        self, session: Session, *, token: str, password: str, client: ClientInfo
    ) -> None: ...
    def list_sessions(self, session: Session, *, principal: Principal) -> list[SessionInfo]: ...
    def revoke_session(
        self, session: Session, *, principal: Principal, session_id: str, client: ClientInfo
    ) -> None: ...
    def revoke_all_sessions(
        self, session: Session, *, principal: Principal, client: ClientInfo
    ) -> int: ...
    def disable_user(
        self, session: Session, *, email: str, actor_user_id: str | None, client: ClientInfo
    ) -> None: ...
    def report_compromise(self, session: Session, *, user_id: str, client: ClientInfo) -> int: ...
    def create_first_operator(
        self,
        session: Session,
        *,
        bootstrap_token: str,
        email: str,
        password: str,
        name: str | None,
        client: ClientInfo,
    ) -> Account: ...
    def complete_mfa(
        self, session: Session, *, mfa_token: str, code: str, client: ClientInfo
    ) -> IssuedSession: ...
    def begin_totp(
        self, session: Session, *, principal: Principal, client: ClientInfo
    ) -> TotpEnrolment: ...
    def confirm_totp(
        self, session: Session, *, principal: Principal, code: str, client: ClientInfo
    ) -> list[str]: ...
    def regenerate_recovery_codes(
        self, session: Session, *, principal: Principal, code: str, client: ClientInfo
    ) -> list[str]: ...
    def step_up(
        self, session: Session, *, principal: Principal, code: str, client: ClientInfo
    ) -> None: ...
    def disable_totp(
        self, session: Session, *, principal: Principal, client: ClientInfo
    ) -> None: ...
    def require_step_up(self, session: Session, *, principal: Principal) -> None: ...
    # Passkeys (passkey_flows.py); credentials are WebAuthn JSON objects from the browser.
    def begin_passkey_registration(self, session: Session, *, principal: Principal) -> str: ...
    def finish_passkey_registration(
        self,
        session: Session,
        *,
        principal: Principal,
        credential: Mapping[str, Any],
        name: str,
        client: ClientInfo,
    ) -> PasskeyInfo: ...
    def list_passkeys(self, session: Session, *, principal: Principal) -> list[PasskeyInfo]: ...
    def delete_passkey(
        self, session: Session, *, principal: Principal, passkey_id: str, client: ClientInfo
    ) -> None: ...
    def begin_passkey_mfa(self, session: Session, *, mfa_token: str, client: ClientInfo) -> str: ...
    def complete_mfa_with_passkey(
        self,
        session: Session,
        *,
        mfa_token: str,
        credential: Mapping[str, Any],
        client: ClientInfo,
    ) -> IssuedSession: ...
    def begin_passkey_step_up(self, session: Session, *, principal: Principal) -> str: ...
    def step_up_with_passkey(
        self,
        session: Session,
        *,
        principal: Principal,
        credential: Mapping[str, Any],
        client: ClientInfo,
    ) -> None: ...
    def begin_passkey_login(self, session: Session) -> str: ...
    def login_with_passkey(
        self, session: Session, *, credential: Mapping[str, Any], client: ClientInfo
    ) -> IssuedSession: ...
    # Operators (operator_flows.py).
    def revoke_user_sessions(
        self, session: Session, *, user: str, actor_user_id: str | None, client: ClientInfo
    ) -> RevokedCredentials: ...


class SqlIdentity(PasswordFlows, PasskeyFlows, OperatorFlows):
    """``Identity`` over SQLAlchemy; see the module docstring. Password, second-factor, passkey
    and operator flows live in ``password_flows``, ``mfa_flows``, ``passkey_flows`` and
    ``operator_flows``; shared helpers in ``base``."""

    # -- accounts -------------------------------------------------------------------------

    def signup(
        self, session: Session, *, email: str, password: str, name: str | None, client: ClientInfo
    ) -> Account:
        """Create an account and mail a verification link.

        Raises SignupClosed (invitation-only), InvalidEmail, a PasswordRejected subclass, or
        EmailTaken. The policy runs before the uniqueness check, so a refused password never
        tells whether the address is registered.
        """
        if self._settings.signup != "open":
            raise SignupClosed
        user = self._create_user(
            session, email=email, password=password, name=name, is_operator=False
        )
        self._record(session, IdentityAction.SIGNUP, client, actor=user.id, target=user.id)
        self._send_verification(session, user)
        return self._account(user)

    def verify_email(self, session: Session, *, token: str, client: ClientInfo) -> None:
        """Confirm an address: the account's own (sign-up) or a requested new one (e-mail
        change). Raises TokenInvalid (unknown, used, expired, wrong kind), EmailTaken if the new
        address was registered meanwhile."""
        now = self._clock.now()
        row = tokens.redeem(
            session,
            token=token,
            purpose=(TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL),
            now=now,
        )
        user = repository.user_by_id(session, row.user_id)
        if user is None or user.disabled_at is not None:
            raise TokenInvalid
        if row.purpose == TokenPurpose.CHANGE_EMAIL:
            self._apply_email_change(session, user, row, client)
            return
        if user.email_verified_at is None:
            user.email_verified_at = now
        self._record(session, IdentityAction.EMAIL_VERIFIED, client, actor=user.id, target=user.id)

    def request_email_change(
        self,
        session: Session,
        *,
        principal: Principal,
        new_email: str,
        password: str,
        client: ClientInfo,
    ) -> None:
        """Start changing the address: needs the password (re-authentication, ASVS V7.5.1) and,
        with a second factor on, a recent step-up. Mails a token to the new address and a notice
        to the old one; nothing changes until the token comes back to ``verify_email``.

        Raises CurrentPasswordWrong, StepUpRequired, InvalidEmail or EmailTaken.
        """
        user = repository.user_by_id(session, principal.user_id)
        if user is None:
            raise UserNotFound
        if not self._hasher.verify(user.password_hash, password):
            raise CurrentPasswordWrong(field="password")
        if factors.has_second_factor(session, user.id):
            self._require_recent_mfa(session, principal)
        address = normalise_email(new_email)
        if self._user_by_email(session, address) is not None:
            raise EmailTaken
        token_id = new_id()
        # Sealed to the token row, and before this transaction's first write (SQLite, keyring).
        sealed = keys.seal_pending_email(self._keys, token_id, address)
        lifetime = self._settings.email_verification_lifetime_seconds
        token = tokens.issue(
            session,
            user_id=user.id,
            purpose=TokenPurpose.CHANGE_EMAIL,
            now=self._clock.now(),
            lifetime=timedelta(seconds=lifetime),
            token_id=token_id,
            payload_sealed=sealed,
        )
        self._record(
            session, IdentityAction.EMAIL_CHANGE_REQUESTED, client, actor=user.id, target=user.id
        )
        now = self._clock.now()
        self._outbox.send(
            session,
            messages.email_change(
                to=address.value,
                name=user.name,
                base_url=self._base_url,
                token=token,
                hours=lifetime // 3600,
            ),
            now=now,
        )
        self._outbox.send(
            session,
            messages.email_change_notice(to=self._email_of(user), name=user.name),
            now=now,
        )

    def account(self, session: Session, *, principal: Principal) -> Account:
        user = repository.user_by_id(session, principal.user_id)
        if user is None:
            raise UserNotFound
        return self._account(user, mfa_enabled=factors.has_second_factor(session, user.id))

    def disable_user(
        self, session: Session, *, email: str, actor_user_id: str | None, client: ClientInfo
    ) -> None:
        """Disable an account and kill every session of it before returning. Idempotent.

        Raises InvalidEmail or UserNotFound (an operator command: existence is not a secret).
        """
        user = self._user_by_email(session, normalise_email(email))
        if user is None:
            raise UserNotFound
        now = self._clock.now()
        if user.disabled_at is None:
            user.disabled_at = now
        killed, keys = self._revoke_everything(
            session, user.id, now, reason="user_disabled", actor=actor_user_id, client=client
        )
        self._record(
            session,
            IdentityAction.USER_DISABLED,
            client,
            actor=actor_user_id,
            target=user.id,
            details={"sessions_revoked": killed, "api_keys_revoked": keys},
        )

    def report_compromise(self, session: Session, *, user_id: str, client: ClientInfo) -> int:
        """ "This wasn't me": end every session of the user before returning (the same revocation
        as a password reset, so every credential hanging on it dies too), mail a password-reset
        link, and audit. Returns the number of sessions revoked. Raises UserNotFound.

        Logins stay refused until the password is reset: the caller (detection) holds that lock.
        """
        user = repository.user_by_id(session, user_id, for_update=True)
        if user is None:
            raise UserNotFound
        killed, keys = self._revoke_everything(
            session,
            user.id,
            self._clock.now(),
            reason="compromise_reported",
            actor=user.id,
            client=client,
        )
        self._record(
            session,
            IdentityAction.COMPROMISE_REPORTED,
            client,
            actor=user.id,
            target=user.id,
            details={"sessions_revoked": killed, "api_keys_revoked": keys},
        )
        if user.disabled_at is None:
            self.request_password_reset(session, email=self._email_of(user), client=client)
        return killed

    def create_first_operator(
        self,
        session: Session,
        *,
        bootstrap_token: str,
        email: str,
        password: str,
        name: str | None,
        client: ClientInfo,
    ) -> Account:
        """Create the first operator and redeem the bootstrap token, in one transaction.

        Raises BootstrapTokenInvalid, AlreadyBootstrapped, InvalidEmail, PasswordRejected or
        EmailTaken; on any of them the token stays unused (the transaction rolls back).
        """
        self._bootstrap.check(session, bootstrap_token)
        if repository.operator_exists(session):
            raise AlreadyBootstrapped
        user = self._create_user(
            session, email=email, password=password, name=name, is_operator=True
        )
        # Redeemed last, with a conditional UPDATE: a concurrent redemption makes this fail.
        self._bootstrap.redeem(session, bootstrap_token)
        self._record(
            session, IdentityAction.OPERATOR_BOOTSTRAPPED, client, actor=user.id, target=user.id
        )
        # The operator proved control of the server console, not of the mailbox.
        self._send_verification(session, user)
        return self._account(user)

    # -- login and sessions -----------------------------------------------------------------

    def login(
        self, session: Session, *, email: str, password: str, client: ClientInfo
    ) -> IssuedSession:
        """A new session for valid credentials; InvalidCredentials otherwise.

        Unknown e-mail, wrong password and disabled account cost one argon2 verification each
        and raise the same error; the refusal is audited (and committed: audited refusal).
        """
        user, account_key = self._login_lookup(session, email)
        attempt = self._login_attempt(account_key, user, client)
        # The guard may refuse a locked account (the same 401 and the same argon2 cost as a wrong
        # password, without checking this one), or a blocked source (429).
        if self._guard.admit(session, attempt) is Admission.LOCKED:
            self._hasher.verify_dummy(password)
            self._refuse_login(session, client, actor=attempt.user_id, reason="locked")
        if user is None:
            self._hasher.verify_dummy(password)
            self._guard.failed(session, attempt)
            self._refuse_login(session, client, actor=None, reason="unknown_account")
        if not self._hasher.verify(user.password_hash, password):
            self._guard.failed(session, attempt)
            self._refuse_login(session, client, actor=user.id, reason="wrong_password")
        if user.disabled_at is not None:
            self._refuse_login(session, client, actor=user.id, reason="disabled")
        self._guard.succeeded(session, attempt)
        rehashed = self._hasher.needs_rehash(user.password_hash)
        if rehashed:
            # Kept even when a second factor is still due (committed with MfaRequired).
            repository.set_password_hash(session, user.id, self._hasher.hash(password))
        # Read with the account (one statement); the password was needed to learn them.
        enrolled = factors.factor_names(totp=user.has_totp, passkey=user.has_passkey)
        if enrolled:
            mfa_token = self._mfa.open_challenge(session, user_id=user.id, now=self._clock.now())
            self._record(
                session,
                IdentityAction.MFA_CHALLENGED,
                client,
                actor=user.id,
                target=user.id,
                details={"rehashed": rehashed},
            )
            raise MfaRequired(mfa_token=mfa_token, factors=enrolled)
        # Before the session row: the guard seals its new-device notice before its first write
        # (SQLite, see mail.queue), and a refusal it raises leaves no session behind.
        # The address was opened for the guard's attempt already: no second decryption.
        self._guard.signed_in(
            session,
            SignedIn(
                user_id=user.id,
                email=attempt.email or self._email_of(user),
                name=user.name,
                client=client,
            ),
        )
        issued = sessions.issue(
            session, user_id=user.id, client=client, now=self._clock.now(), policy=self._sessions
        )
        self._record(
            session,
            IdentityAction.LOGIN,
            client,
            actor=user.id,
            target=issued.id,
            details={"rehashed": rehashed, "mfa": None},
        )
        return issued

    def authenticate(
        self,
        session: Session,
        *,
        token: str,
        via_cookie: bool,
        csrf_token: str | None = None,
        require_csrf: bool = False,
    ) -> Principal:
        """The principal of a session token (checked against the store; see ``sessions``)."""
        return sessions.authenticate(
            session,
            token=token,
            now=self._clock.now(),
            policy=self._sessions,
            via_cookie=via_cookie,
            csrf_token=csrf_token,
            require_csrf=require_csrf,
        )

    def _apply_email_change(
        self, session: Session, user: User, row: EmailToken, client: ClientInfo
    ) -> None:
        if row.payload_sealed is None:
            raise TokenInvalid
        address = normalise_email(keys.open_pending_email(self._keys, row.id, row.payload_sealed))
        index = keys.email_index(self._keys, address)
        if repository.user_by_email_index(session, index) is not None:
            raise EmailTaken
        user.email_sealed = keys.seal_email(self._keys, user.id, address)
        user.email_index = index
        user.email_verified_at = self._clock.now()
        try:
            session.flush()
        except IntegrityError:
            raise EmailTaken from None
        self._record(session, IdentityAction.EMAIL_CHANGED, client, actor=user.id, target=user.id)

    def logout(self, session: Session, *, principal: Principal, client: ClientInfo) -> None:
        now = self._clock.now()
        repository.revoke_session(session, principal.user_id, principal.session_id, now)
        self._record(
            session,
            IdentityAction.LOGOUT,
            client,
            actor=principal.user_id,
            target=principal.session_id,
        )

    def list_sessions(self, session: Session, *, principal: Principal) -> list[SessionInfo]:
        now = self._clock.now()
        return [
            SessionInfo(
                id=SessionId(row.id),
                created_at=as_utc(row.created_at),
                last_seen_at=as_utc(row.last_seen_at),
                expires_at=as_utc(row.expires_at),
                ip=row.ip,
                user_agent=row.user_agent,
                current=row.id == principal.session_id,
            )
            for row in repository.live_sessions(session, principal.user_id, now)
            if sessions.is_live(row, now=now, policy=self._sessions)
        ]

    def revoke_session(
        self, session: Session, *, principal: Principal, session_id: str, client: ClientInfo
    ) -> None:
        """Revoke one of the caller's sessions; SessionNotFound for anyone else's (no oracle)."""
        now = self._clock.now()
        if not repository.revoke_session(session, principal.user_id, session_id, now):
            raise SessionNotFound
        self._record(
            session,
            IdentityAction.SESSION_REVOKED,
            client,
            actor=principal.user_id,
            target=session_id,
        )

    def revoke_all_sessions(
        self, session: Session, *, principal: Principal, client: ClientInfo
    ) -> int:
        """Revoke every session of the caller, the current one included, and every API key."""
        killed, keys = self._revoke_everything(
            session,
            principal.user_id,
            self._clock.now(),
            reason="sessions_revoked",
            actor=principal.user_id,
            client=client,
        )
        self._record(
            session,
            IdentityAction.SESSIONS_REVOKED,
            client,
            actor=principal.user_id,
            target=principal.user_id,
            details={"sessions_revoked": killed, "api_keys_revoked": keys},
        )
        return killed


__all__ = ["Identity", "SqlIdentity"]
