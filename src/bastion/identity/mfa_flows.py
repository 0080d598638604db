"""Second-factor flows of ``SqlIdentity``: finishing an MFA login, enrolling TOTP, and
recovery codes. The mechanism lives in ``mfa``; this adds auditing and the edge contract."""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from sqlalchemy.orm import Session

from bastion.identity import repository, sessions
from bastion.identity.base import IdentityBase
from bastion.identity.errors import (
    MfaCodeInvalid,
    SessionCodeInvalid,
    StepUpRequired,
    TotpCodeInvalid,
    TotpNotEnabled,
    UserNotFound,
)
from bastion.identity.events import EventOutcome
from bastion.identity.guard import SignedIn
from bastion.identity.types import (
    ClientInfo,
    IdentityAction,
    IssuedSession,
    Principal,
    TotpEnrolment,
)

# Wrong second-factor codes a session may send (step-up, regeneration) before it is revoked.
MAX_SESSION_CODE_FAILURES = 5


class SecondFactorFlows(IdentityBase):
    """MFA login completion, TOTP enrolment, recovery codes; mixed into ``SqlIdentity``."""

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
            session, user_id=user.id, client=client, now=now, policy=self._sessions, with_mfa=True
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
        self._guard.signed_in(
            session,
            SignedIn(
                user_id=user.id,
                email=self._email_of(user),
                name=user.name,
                client=client,
                mfa=method,
            ),
        )
        return issued

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
        now = self._clock.now()
        codes = self._mfa.confirm_totp(session, user_id=principal.user_id, code=code, now=now)
        # The user just proved the new factor in this session.
        sessions.mark_mfa(session, principal.session_id, now)
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
        try:
            self._mfa.check_totp(session, user_id=principal.user_id, code=code, now=now)
        except TotpCodeInvalid:
            self._session_code_failed(
                session, principal, client, IdentityAction.RECOVERY_CODES_GENERATED
            )
        codes = self._mfa.replace_recovery_codes(session, user_id=principal.user_id, now=now)
        self._record(
            session,
            IdentityAction.RECOVERY_CODES_GENERATED,
            client,
            actor=principal.user_id,
            target=principal.user_id,
        )
        return codes

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

    def step_up(
        self, session: Session, *, principal: Principal, code: str, client: ClientInfo
    ) -> None:
        """Prove a second factor (TOTP or recovery code, each spent) in the current session, so
        sensitive actions are allowed for ``identity.step_up_seconds``. TotpCodeInvalid if not."""
        now = self._clock.now()
        method = self._mfa.prove(session, user_id=principal.user_id, code=code, now=now)
        if method is None:
            self._session_code_failed(session, principal, client, IdentityAction.STEP_UP)
        sessions.mark_mfa(session, principal.session_id, now)
        self._record(
            session,
            IdentityAction.STEP_UP,
            client,
            actor=principal.user_id,
            target=principal.session_id,
            details={"mfa": method},
        )

    def disable_totp(self, session: Session, *, principal: Principal, client: ClientInfo) -> None:
        """Turn the authenticator off (secret and recovery codes deleted). Needs a recent step-up
        (StepUpRequired); TotpNotEnabled if it is not on."""
        self._require_recent_mfa(session, principal)
        if not self._mfa.remove(session, user_id=principal.user_id):
            raise TotpNotEnabled
        self._record(
            session,
            IdentityAction.TOTP_DISABLED,
            client,
            actor=principal.user_id,
            target=principal.user_id,
        )

    def require_step_up(self, session: Session, *, principal: Principal) -> None:
        """Return if a second factor was proved in this session within ``step_up_seconds``;
        StepUpRequired (403) otherwise, also for an account with no second factor at all."""
        self._require_recent_mfa(session, principal)

    def _require_recent_mfa(self, session: Session, principal: Principal) -> None:
        within = timedelta(seconds=self._settings.step_up_seconds)
        now = self._clock.now()
        if not sessions.has_recent_mfa(session, principal.session_id, now=now, within=within):
            raise StepUpRequired

    def _session_code_failed(
        self,
        session: Session,
        principal: Principal,
        client: ClientInfo,
        action: IdentityAction,
    ) -> NoReturn:
        revoked = sessions.count_mfa_failure(
            session, principal.session_id, now=self._clock.now(), limit=MAX_SESSION_CODE_FAILURES
        )
        self._record(
            session,
            action,
            client,
            actor=principal.user_id,
            target=principal.session_id,
            outcome=EventOutcome.FAILURE,
            details={"reason": "wrong_code", "session_revoked": revoked},
        )
        raise SessionCodeInvalid(field="code")
