"""What every identity flow shares: collaborators, policies, and the helpers that create
users, set passwords, send mail and record audit events. ``SqlIdentity`` (service.py) is
assembled from this base and the flow classes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.identity import keys, messages, repository, tokens
from bastion.identity.emails import EmailAddress, normalise_email
from bastion.identity.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
)
from bastion.identity.events import AuditTrail, EventOutcome, IdentityEvent
from bastion.identity.first_operator import FirstOperatorBootstrap
from bastion.identity.guard import LoginAttempt, LoginGuard, OpenDoor
from bastion.identity.keys import SystemKeys
from bastion.identity.mfa import SecondFactors
from bastion.identity.models import PasswordHistory, User
from bastion.identity.passwords import PasswordHasher, PasswordPolicy, check_not_reused
from bastion.identity.repository import LoginAccount
from bastion.identity.revocation import CredentialRevoker
from bastion.identity.sessions import SessionPolicy
from bastion.identity.types import (
    Account,
    ClientInfo,
    IdentityAction,
    TokenPurpose,
    UserId,
)
from bastion.identity.webauthn import Passkeys, RelyingParty
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id
from bastion.mail import MailQueue
from bastion.settings import IdentitySettings


class IdentityBase:
    """Collaborators and shared helpers; see ``SqlIdentity`` for the public contract."""

    def __init__(
        self,
        *,
        settings: IdentitySettings,
        hasher: PasswordHasher,
        keys: SystemKeys,
        clock: Clock,
        outbox: MailQueue,
        audit: AuditTrail,
        bootstrap: FirstOperatorBootstrap,
        base_url: str,
        guard: LoginGuard | None = None,
        webauthn_origin: str | None = None,
        credential_revokers: Sequence[CredentialRevoker] = (),
    ) -> None:
        self._settings = settings
        self._hasher = hasher
        self._keys = keys
        self._clock = clock
        self._outbox = outbox
        self._audit = audit
        self._bootstrap = bootstrap
        self._base_url = base_url.rstrip("/")
        self._guard: LoginGuard = guard or OpenDoor()
        self._passkeys = Passkeys(
            relying_party=RelyingParty(
                id=settings.webauthn_rp_id,
                name=settings.webauthn_rp_name,
                origin=webauthn_origin
                or settings.webauthn_origin
                or f"https://{settings.webauthn_rp_id}",
            )
        )
        self._credential_revokers = tuple(credential_revokers)
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

    # -- helpers --------------------------------------------------------------------------

    def _account(self, user: User, *, mfa_enabled: bool = False) -> Account:
        return Account(
            id=UserId(user.id),
            email=self._email_of(user),
            name=user.name,
            is_operator=user.is_operator,
            email_verified=user.email_verified_at is not None,
            created_at=as_utc(user.created_at),
            mfa_enabled=mfa_enabled,
        )

    def _email_of(self, user: User | LoginAccount) -> str:
        return keys.open_email(self._keys, user.id, user.email_sealed)

    def _user_by_email(self, session: Session, address: EmailAddress) -> User | None:
        return repository.user_by_email_index(session, keys.email_index(self._keys, address))

    def _find_for_login(self, session: Session, email: str) -> LoginAccount | None:
        # An unparseable address is just an unknown account: same answer, same cost.
        return self._login_lookup(session, email)[0]

    def _login_lookup(self, session: Session, email: str) -> tuple[LoginAccount | None, bytes]:
        """The account for ``email`` (None if unknown or unparseable), with its enrolled
        second factors, and its *account key*: the blind index of the normalised address, or
        of the raw text when it is not an address, so an unknown account is counted exactly
        like a real one. One keyed MAC and at most one indexed read."""
        try:
            index = keys.email_index(self._keys, normalise_email(email))
        except InvalidEmail:
            raw = email.strip().lower().encode("utf-8")
            return None, self._keys.system_mac(keys.EMAIL_INDEX_PURPOSE, raw)
        return repository.login_account(session, index), index

    def _login_attempt(
        self, account_key: bytes, user: User | LoginAccount | None, client: ClientInfo
    ) -> LoginAttempt:
        """What the login guard sees (``_login_lookup`` gives the account key)."""
        return LoginAttempt(
            account_key=account_key,
            client=client,
            user_id=user.id if user is not None else None,
            password_changed_at=as_utc(user.password_changed_at) if user is not None else None,
            email=self._email_of(user) if user is not None else None,
            name=user.name if user is not None else None,
        )

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
        # Queued in this transaction (the address was sealed earlier in it, so sealing the mail
        # needs no keyring write: see mail.queue); delivered after the commit.
        self._outbox.send(session, mail, now=self._clock.now())

    def _revoke_everything(
        self,
        session: Session,
        user_id: str,
        now: datetime,
        *,
        reason: str,
        actor: str | None,
        client: ClientInfo,
    ) -> tuple[int, int]:
        """End every session of ``user_id`` and every credential other domains hold for them
        (API keys), in this transaction; returns (sessions, other credentials) revoked."""
        killed = repository.revoke_all_sessions(session, user_id, now)
        keys = sum(
            revoker.revoke_user_credentials(
                session,
                user_id=user_id,
                now=now,
                reason=reason,
                actor_user_id=actor,
                client=client,
            )
            for revoker in self._credential_revokers
        )
        return killed, keys

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
