"""The identity service: accounts, passwords, sessions, e-mailed tokens, the first operator.

``Identity`` is the interface other packages and the edges use; ``SqlIdentity`` implements it
over SQLAlchemy. Every method runs inside the caller's transaction (the edge commits), records an
audit event for each state change, and is synchronous on purpose: password hashing must run off
the event loop (see ``passwords``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn, Protocol

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.identity import keys, messages, repository, sessions, tokens
from bastion.identity.emails import EmailAddress, normalise_email
from bastion.identity.errors import (
    AlreadyBootstrapped,
    CurrentPasswordWrong,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    MfaCodeInvalid,
    MfaRequired,
    SessionNotFound,
    SignupClosed,
    TokenInvalid,
    UserNotFound,
)
from bastion.identity.events import AuditTrail, EventOutcome, IdentityEvent
from bastion.identity.first_operator import FirstOperatorBootstrap
from bastion.identity.keys import SystemKeys
from bastion.identity.mfa import SecondFactors
from bastion.identity.models import PasswordHistory, User
from bastion.identity.passwords import PasswordHasher, PasswordPolicy, check_not_reused
from bastion.identity.sessions import SessionPolicy, aware
from bastion.identity.types import (
    Account,
    ClientInfo,
    IdentityAction,
    IssuedSession,
    Principal,
    SessionId,
    SessionInfo,
    TokenPurpose,
    TotpEnrolment,
    UserId,
)
from bastion.kernel.clock import Clock
from bastion.kernel.ids import new_id
from bastion.mail import MailDeliveryFailed, Outbox
from bastion.settings import IdentitySettings

log = structlog.get_logger("bastion.identity")


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


class SqlIdentity:
    """``Identity`` over SQLAlchemy; see the module docstring."""

    def __init__(
        self,
        *,
        settings: IdentitySettings,
        hasher: PasswordHasher,
        keys: SystemKeys,
        clock: Clock,
        outbox: Outbox,
        audit: AuditTrail,
        bootstrap: FirstOperatorBootstrap,
        base_url: str,
    ) -> None:
        self._settings = settings
        self._hasher = hasher
        self._keys = keys
        self._clock = clock
        self._outbox = outbox
        self._audit = audit
        self._bootstrap = bootstrap
        self._base_url = base_url.rstrip("/")
        self._policy = PasswordPolicy(
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
            min_score=settings.password_min_score,
            context_words=settings.password_context_words,
        )
        self._mfa = SecondFactors(keys=keys, hasher=hasher)
        self._sessions = SessionPolicy(
            idle_timeout=timedelta(seconds=settings.session_idle_timeout_seconds),
            absolute_lifetime=timedelta(seconds=settings.session_absolute_lifetime_seconds),
        )

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
        """Mark the address verified. Raises TokenInvalid (unknown, used, expired, wrong kind)."""
        now = self._clock.now()
        row = tokens.redeem(session, token=token, purpose=TokenPurpose.VERIFY_EMAIL, now=now)
        user = repository.user_by_id(session, row.user_id)
        if user is None:
            raise TokenInvalid
        if user.email_verified_at is None:
            user.email_verified_at = now
        self._record(session, IdentityAction.EMAIL_VERIFIED, client, actor=user.id, target=user.id)

    def account(self, session: Session, *, principal: Principal) -> Account:
        user = repository.user_by_id(session, principal.user_id)
        if user is None:
            raise UserNotFound
        return self._account(user, mfa_enabled=self._mfa.is_enabled(session, user.id))

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
        killed = repository.revoke_all_sessions(session, user.id, now)
        self._record(
            session,
            IdentityAction.USER_DISABLED,
            client,
            actor=actor_user_id,
            target=user.id,
            details={"sessions_revoked": killed},
        )

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
        user = self._find_for_login(session, email)
        if user is None:
            self._hasher.verify_dummy(password)
            self._refuse_login(session, client, actor=None, reason="unknown_account")
        if not self._hasher.verify(user.password_hash, password):
            self._refuse_login(session, client, actor=user.id, reason="wrong_password")
        if user.disabled_at is not None:
            self._refuse_login(session, client, actor=user.id, reason="disabled")
        rehashed = self._hasher.needs_rehash(user.password_hash)
        if rehashed:
            # Kept even when a second factor is still due (committed with MfaRequired).
            user.password_hash = self._hasher.hash(password)
        if self._mfa.is_enabled(session, user.id):
            mfa_token = self._mfa.open_challenge(session, user_id=user.id, now=self._clock.now())
            self._record(
                session,
                IdentityAction.MFA_CHALLENGED,
                client,
                actor=user.id,
                target=user.id,
                details={"rehashed": rehashed},
            )
            raise MfaRequired(mfa_token=mfa_token)
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

    def complete_mfa(
        self, session: Session, *, mfa_token: str, code: str, client: ClientInfo
    ) -> IssuedSession:
        """Finish a login with a TOTP or recovery code; MfaCodeInvalid for anything wrong.

        A code is accepted once (TOTP steps and recovery codes are spent atomically); a challenge
        dies after five wrong codes or five minutes. Failures are audited and committed.
        """
        now = self._clock.now()
        try:
            challenge = self._mfa.live_challenge(session, token=mfa_token, now=now)
        except MfaCodeInvalid:
            self._refuse_mfa(session, client, actor=None, reason="challenge_invalid")
        user = repository.user_by_id(session, challenge.user_id)
        if user is None or user.disabled_at is not None:
            self._refuse_mfa(session, client, actor=challenge.user_id, reason="disabled")
        method = self._mfa.answer(session, challenge=challenge, code=code, now=now)
        if method is None:
            self._refuse_mfa(session, client, actor=user.id, reason="wrong_code")
        issued = sessions.issue(
            session, user_id=user.id, client=client, now=now, policy=self._sessions
        )
        self._record(
            session,
            IdentityAction.LOGIN,
            client,
            actor=user.id,
            target=issued.id,
            details={
                "mfa": method,
                "recovery_codes_left": self._mfa.recovery_codes_left(session, user.id),
            },
        )
        return issued

    # -- second factors -------------------------------------------------------------------

    def begin_totp(
        self, session: Session, *, principal: Principal, client: ClientInfo
    ) -> TotpEnrolment:
        """Start authenticator enrolment: a new secret (shown once), its URI and QR code."""
        user = repository.user_by_id(session, principal.user_id)
        if user is None:
            raise UserNotFound
        enrolment = self._mfa.begin_totp(
            session, user_id=user.id, account=self._email_of(user), now=self._clock.now()
        )
        self._record(
            session, IdentityAction.TOTP_ENROLMENT_STARTED, client, actor=user.id, target=user.id
        )
        return enrolment

    def confirm_totp(
        self, session: Session, *, principal: Principal, code: str, client: ClientInfo
    ) -> list[str]:
        """Enable TOTP once a code proves the app has the secret; returns ten recovery codes."""
        codes = self._mfa.confirm_totp(
            session, user_id=principal.user_id, code=code, now=self._clock.now()
        )
        self._record(
            session,
            IdentityAction.TOTP_ENABLED,
            client,
            actor=principal.user_id,
            target=principal.user_id,
        )
        return codes

    def regenerate_recovery_codes(
        self, session: Session, *, principal: Principal, code: str, client: ClientInfo
    ) -> list[str]:
        """Ten new recovery codes (the old ones stop working); needs a fresh TOTP code."""
        now = self._clock.now()
        self._mfa.check_totp(session, user_id=principal.user_id, code=code, now=now)
        codes = self._mfa.replace_recovery_codes(session, user_id=principal.user_id, now=now)
        self._record(
            session,
            IdentityAction.RECOVERY_CODES_GENERATED,
            client,
            actor=principal.user_id,
            target=principal.user_id,
        )
        return codes

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
                created_at=aware(row.created_at),
                last_seen_at=aware(row.last_seen_at),
                expires_at=aware(row.expires_at),
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
        """Revoke every session of the caller, the current one included."""
        killed = repository.revoke_all_sessions(session, principal.user_id, self._clock.now())
        self._record(
            session,
            IdentityAction.SESSIONS_REVOKED,
            client,
            actor=principal.user_id,
            target=principal.user_id,
            details={"sessions_revoked": killed},
        )
        return killed

    # -- passwords ------------------------------------------------------------------------

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
        """Mail a reset link if the address has an active account; silent otherwise.

        The caller answers the same whatever happens here (no enumeration); a mail failure is
        logged, not raised, for the same reason.
        """
        user = self._find_for_login(session, email)
        if user is None or user.disabled_at is not None:
            return
        token = tokens.issue(
            session,
            user_id=user.id,
            purpose=TokenPurpose.RESET_PASSWORD,
            now=self._clock.now(),
            lifetime=timedelta(seconds=self._settings.password_reset_lifetime_seconds),
        )
        self._record(session, IdentityAction.PASSWORD_RESET_REQUESTED, client, target=user.id)
        mail = messages.password_reset(
            to=self._email_of(user),
            name=user.name,
            base_url=self._base_url,
            token=token,
            minutes=self._settings.password_reset_lifetime_seconds // 60,
        )
        try:
            self._outbox.send(mail, now=self._clock.now())
        except MailDeliveryFailed:
            log.warning("identity.reset_mail_failed", user=user.id)

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
        killed = repository.revoke_all_sessions(session, user.id, now)
        self._record(
            session,
            IdentityAction.PASSWORD_RESET,
            client,
            actor=user.id,
            target=user.id,
            details={"sessions_revoked": killed},
        )

    # -- helpers --------------------------------------------------------------------------

    def _account(self, user: User, *, mfa_enabled: bool = False) -> Account:
        return Account(
            id=UserId(user.id),
            email=self._email_of(user),
            name=user.name,
            is_operator=user.is_operator,
            email_verified=user.email_verified_at is not None,
            created_at=aware(user.created_at),
            mfa_enabled=mfa_enabled,
        )

    def _email_of(self, user: User) -> str:
        return keys.open_email(self._keys, user.id, user.email_sealed)

    def _user_by_email(self, session: Session, address: EmailAddress) -> User | None:
        return repository.user_by_email_index(session, keys.email_index(self._keys, address))

    def _find_for_login(self, session: Session, email: str) -> User | None:
        # An unparseable address is just an unknown account: same answer, same cost.
        try:
            address = normalise_email(email)
        except InvalidEmail:
            return None
        return self._user_by_email(session, address)

    def _refuse_login(
        self, session: Session, client: ClientInfo, *, actor: str | None, reason: str
    ) -> NoReturn:
        self._record(
            session,
            IdentityAction.LOGIN,
            client,
            actor=actor,
            outcome=EventOutcome.FAILURE,
            details={"reason": reason},
        )
        raise InvalidCredentials

    def _refuse_mfa(
        self, session: Session, client: ClientInfo, *, actor: str | None, reason: str
    ) -> NoReturn:
        self._record(
            session,
            IdentityAction.LOGIN,
            client,
            actor=actor,
            outcome=EventOutcome.FAILURE,
            details={"reason": reason, "mfa": True},
        )
        raise MfaCodeInvalid

    def _create_user(
        self, session: Session, *, email: str, password: str, name: str | None, is_operator: bool
    ) -> User:
        address = normalise_email(email)
        self._policy.check(password, user_inputs=[address.value, *([name] if name else [])])
        index = keys.email_index(self._keys, address)
        if repository.user_by_email_index(session, index) is not None:
            raise EmailTaken
        user_id = new_id()
        now = self._clock.now()
        user = User(
            id=user_id,
            # Sealed before this transaction's first write: on SQLite the keyring's own short
            # transaction must not wait behind ours.
            email_sealed=keys.seal_email(self._keys, user_id, address),
            email_index=index,
            name=name,
            password_hash=self._hasher.hash(password),
            is_operator=is_operator,
            created_at=now,
            email_verified_at=None,
            password_changed_at=now,
            disabled_at=None,
        )
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            # A concurrent sign-up with the same address won the race.
            raise EmailTaken from None
        self._remember_password(session, user)
        return user

    def _set_password(self, session: Session, user: User, password: str) -> None:
        context = [self._email_of(user), *([user.name] if user.name else [])]
        self._policy.check(password, user_inputs=context)
        recent = repository.recent_password_hashes(
            session, user.id, self._settings.password_history
        )
        check_not_reused(self._hasher, password, [user.password_hash, *recent])
        user.password_hash = self._hasher.hash(password)
        user.password_changed_at = self._clock.now()
        self._remember_password(session, user)

    def _remember_password(self, session: Session, user: User) -> None:
        keep = self._settings.password_history
        if keep <= 0:
            return
        session.add(
            PasswordHistory(
                user_id=user.id, password_hash=user.password_hash, created_at=self._clock.now()
            )
        )
        session.flush()
        repository.prune_password_history(session, user.id, keep)

    def _send_verification(self, session: Session, user: User) -> None:
        lifetime = self._settings.email_verification_lifetime_seconds
        token = tokens.issue(
            session,
            user_id=user.id,
            purpose=TokenPurpose.VERIFY_EMAIL,
            now=self._clock.now(),
            lifetime=timedelta(seconds=lifetime),
        )
        mail = messages.verification(
            to=self._email_of(user),
            name=user.name,
            base_url=self._base_url,
            token=token,
            hours=lifetime // 3600,
        )
        # A failure here fails the sign-up (503): better than an account nobody can verify.
        self._outbox.send(mail, now=self._clock.now())

    def _record(
        self,
        session: Session,
        action: IdentityAction,
        client: ClientInfo,
        *,
        actor: str | None = None,
        target: str | None = None,
        outcome: EventOutcome = EventOutcome.SUCCESS,
        details: dict[str, str | int | bool | None] | None = None,
    ) -> None:
        self._audit.record(
            session,
            IdentityEvent(
                action=action,
                client=client,
                actor_user_id=actor,
                target=target,
                outcome=outcome,
                details=details or {},
            ),
        )


__all__ = ["Identity", "SqlIdentity"]
