"""Passkey flows of ``SqlIdentity``: registration, listing and removal, and a passkey as the
second factor of a login, as a step-up, or as a passwordless login. The mechanism lives in
``webauthn``; this adds the account rules, the auditing and the edge contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from bastion.identity import factors, repository, sessions
from bastion.identity.errors import (
    MfaCodeInvalid,
    PasskeyCloneSuspected,
    PasskeyInvalid,
    PasskeyNotFound,
    UserNotFound,
)
from bastion.identity.events import EventOutcome
from bastion.identity.guard import Admission, SignedIn
from bastion.identity.mfa_flows import SecondFactorFlows
from bastion.identity.models import User
from bastion.identity.types import (
    ClientInfo,
    IdentityAction,
    IssuedSession,
    PasskeyInfo,
    Principal,
)
from bastion.identity.webauthn import Asserted, Binding, Purpose

Credential = Mapping[str, Any]


class PasskeyFlows(SecondFactorFlows):
    """Passkeys; mixed into ``SqlIdentity`` (uses the step-up and MFA helpers of
    ``SecondFactorFlows``)."""

    # -- registration and management -------------------------------------------------------

    def begin_passkey_registration(self, session: Session, *, principal: Principal) -> str:
        """Creation options for a new passkey. The first second factor needs nothing more;
        adding one to an account that has one needs a recent step-up (StepUpRequired), so a
        stolen session cannot plant its own passkey."""
        user = self._user_of(session, principal)
        if factors.has_second_factor(session, user.id):
            self._require_recent_mfa(session, principal)
        email = self._email_of(user)
        return self._passkeys.registration_options(
            session,
            binding=self._session_binding(Purpose.REGISTER, principal),
            user_name=email,
            display_name=user.name or email,
            now=self._clock.now(),
        )

    def finish_passkey_registration(
        self,
        session: Session,
        *,
        principal: Principal,
        credential: Credential,
        name: str,
        client: ClientInfo,
    ) -> PasskeyInfo:
        """Store the passkey an attestation proves (PasskeyInvalid, PasskeyAlreadyRegistered).
        The session counts as having just proved a second factor, as after TOTP enrolment."""
        now = self._clock.now()
        info = self._passkeys.register(
            session,
            binding=self._session_binding(Purpose.REGISTER, principal),
            credential=credential,
            name=name,
            now=now,
        )
        sessions.mark_mfa(session, principal.session_id, now)
        self._record(
            session,
            IdentityAction.PASSKEY_REGISTERED,
            client,
            actor=principal.user_id,
            target=info.id,
            details={"aaguid": info.aaguid},
        )
        return info

    def list_passkeys(self, session: Session, *, principal: Principal) -> list[PasskeyInfo]:
        return self._passkeys.of_user(session, principal.user_id)

    def delete_passkey(
        self, session: Session, *, principal: Principal, passkey_id: str, client: ClientInfo
    ) -> None:
        """Remove one of the caller's passkeys. Needs a recent step-up (StepUpRequired), like
        turning TOTP off; PasskeyNotFound for anyone else's."""
        self._require_recent_mfa(session, principal)
        if not self._passkeys.remove(session, user_id=principal.user_id, passkey_id=passkey_id):
            raise PasskeyNotFound
        self._record(
            session,
            IdentityAction.PASSKEY_REMOVED,
            client,
            actor=principal.user_id,
            target=passkey_id,
        )

    # -- a passkey as the second factor of a password login ---------------------------------

    def begin_passkey_mfa(self, session: Session, *, mfa_token: str, client: ClientInfo) -> str:
        """Request options bound to the half-finished login behind ``mfa_token`` (and to its
        user's passkeys). MfaCodeInvalid if the token is not live or the user has no passkey."""
        now = self._clock.now()
        try:
            challenge = self._mfa.live_challenge(session, token=mfa_token, now=now)
        except MfaCodeInvalid:
            self._refuse_mfa(session, client, actor=None, reason="challenge_invalid")
        if not factors.has_passkey(session, challenge.user_id):
            self._refuse_mfa(session, client, actor=challenge.user_id, reason="no_passkey")
        binding = Binding(Purpose.MFA, user_id=challenge.user_id, mfa_challenge_id=challenge.id)
        return self._passkeys.assertion_options(session, binding=binding, now=now)

    def complete_mfa_with_passkey(
        self, session: Session, *, mfa_token: str, credential: Credential, client: ClientInfo
    ) -> IssuedSession:
        """Finish a login with a passkey assertion. MfaCodeInvalid for anything wrong (counted
        against the challenge, audited); PasskeyCloneSuspected for a counter that went back."""
        now = self._clock.now()
        try:
            challenge = self._mfa.live_challenge(session, token=mfa_token, now=now)
        except MfaCodeInvalid:
            self._refuse_mfa(session, client, actor=None, reason="challenge_invalid")
        user = repository.user_by_id(session, challenge.user_id)
        if user is None or user.disabled_at is not None:
            self._refuse_mfa(session, client, actor=challenge.user_id, reason="disabled")
        binding = Binding(Purpose.MFA, user_id=user.id, mfa_challenge_id=challenge.id)
        try:
            asserted = self._passkeys.verify_assertion(
                session, binding=binding, credential=credential, now=now
            )
        except PasskeyInvalid:
            challenge.attempts += 1
            self._refuse_mfa(session, client, actor=user.id, reason="passkey_invalid")
        if asserted.counter_regressed:
            challenge.attempts += 1
            self._refuse_clone(session, client, asserted)
        challenge.used_at = now
        return self._passkey_session(session, user, client, mfa_detail="passkey")

    # -- step-up ---------------------------------------------------------------------------

    def begin_passkey_step_up(self, session: Session, *, principal: Principal) -> str:
        """Request options for proving a passkey in the current session (PasskeyInvalid if the
        caller has none)."""
        if not factors.has_passkey(session, principal.user_id):
            raise PasskeyInvalid("This account has no passkey.")
        return self._passkeys.assertion_options(
            session,
            binding=self._session_binding(Purpose.STEP_UP, principal),
            now=self._clock.now(),
        )

    def step_up_with_passkey(
        self, session: Session, *, principal: Principal, credential: Credential, client: ClientInfo
    ) -> None:
        """Prove a passkey in this session, like ``step_up`` with a code. A failed proof counts
        against the session (revoked at the limit), as a wrong code does."""
        now = self._clock.now()
        try:
            asserted = self._passkeys.verify_assertion(
                session,
                binding=self._session_binding(Purpose.STEP_UP, principal),
                credential=credential,
                now=now,
            )
        except PasskeyInvalid:
            self._session_code_failed(session, principal, client, IdentityAction.STEP_UP)
        if asserted.counter_regressed:
            self._refuse_clone(session, client, asserted)
        sessions.mark_mfa(session, principal.session_id, now)
        self._record(
            session,
            IdentityAction.STEP_UP,
            client,
            actor=principal.user_id,
            target=principal.session_id,
            details={"mfa": "passkey"},
        )

    # -- passwordless ----------------------------------------------------------------------

    def begin_passkey_login(self, session: Session) -> str:
        """Request options for a passwordless login with a discoverable passkey."""
        return self._passkeys.assertion_options(
            session, binding=Binding(Purpose.LOGIN), now=self._clock.now()
        )

    def login_with_passkey(
        self, session: Session, *, credential: Credential, client: ClientInfo
    ) -> IssuedSession:
        """A session for a verified passkey with user verification (possession plus PIN or
        biometrics: two factors, so the session counts as MFA). InvalidCredentials otherwise,
        the same answer as a wrong password; PasskeyCloneSuspected for a regressed counter."""
        try:
            asserted = self._passkeys.verify_assertion(
                session,
                binding=Binding(Purpose.LOGIN),
                credential=credential,
                now=self._clock.now(),
            )
        except PasskeyInvalid:
            self._refuse_login(session, client, actor=None, reason="passkey_invalid")
        user = repository.user_by_id(session, asserted.user_id)
        if user is None or user.disabled_at is not None:
            self._refuse_login(session, client, actor=asserted.user_id, reason="disabled")
        # The same login guard as a password login (ASVS V6.3.4: no path with weaker controls):
        # an account locked by detection, e.g. after "this wasn't me", stays locked here too.
        # The stored blind index is the account key a password login for this address uses.
        attempt = self._login_attempt(user.email_index, user, client)
        if self._guard.admit(session, attempt) is Admission.LOCKED:
            self._refuse_login(session, client, actor=user.id, reason="locked")
        if asserted.counter_regressed:
            self._refuse_clone(session, client, asserted)
        self._guard.succeeded(session, attempt)
        return self._passkey_session(session, user, client, mfa_detail="passkey_login")

    # -- helpers ---------------------------------------------------------------------------

    def _user_of(self, session: Session, principal: Principal) -> User:
        user = repository.user_by_id(session, principal.user_id)
        if user is None:
            raise UserNotFound
        return user

    @staticmethod
    def _session_binding(purpose: Purpose, principal: Principal) -> Binding:
        return Binding(purpose, user_id=principal.user_id, session_id=principal.session_id)

    def _passkey_session(
        self, session: Session, user: User, client: ClientInfo, *, mfa_detail: str
    ) -> IssuedSession:
        now = self._clock.now()
        # The guard's notice is sealed before this transaction's next writes (SQLite).
        self._guard.signed_in(
            session,
            SignedIn(
                user_id=user.id,
                email=self._email_of(user),
                name=user.name,
                client=client,
                mfa="passkey",
            ),
        )
        issued = sessions.issue(
            session, user_id=user.id, client=client, now=now, policy=self._sessions, with_mfa=True
        )
        self._record(
            session,
            IdentityAction.LOGIN,
            client,
            actor=user.id,
            target=issued.id,
            details={"mfa": mfa_detail},
        )
        return issued

    def _refuse_clone(self, session: Session, client: ClientInfo, asserted: Asserted) -> NoReturn:
        self._record(
            session,
            IdentityAction.PASSKEY_SIGN_COUNT_REGRESSED,
            client,
            actor=asserted.user_id,
            target=asserted.passkey_id,
            outcome=EventOutcome.FAILURE,
            details={"sign_count": asserted.sign_count, "stored": asserted.stored_sign_count},
        )
        raise PasskeyCloneSuspected


__all__ = ["PasskeyFlows"]
