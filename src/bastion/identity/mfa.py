"""Second factors: TOTP enrolment and verification, recovery codes, and login challenges.

``SecondFactors`` holds the mechanism; ``SqlIdentity`` calls it and does the auditing. The TOTP
secret is sealed under the system data key, bound to the user id. A login challenge (the
``mfa_token`` of an ``mfa-required`` answer) is a 256-bit token stored as SHA-256, valid
``CHALLENGE_LIFETIME`` and ``MAX_CHALLENGE_ATTEMPTS`` wrong codes, then dead. Accepting a TOTP
step or spending a recovery code is a conditional UPDATE, so concurrent replays cannot both win.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from bastion.identity import recovery, totp
from bastion.identity.errors import (
    MfaCodeInvalid,
    TotpAlreadyEnabled,
    TotpCodeInvalid,
    TotpNotEnabled,
    TotpNotPending,
)
from bastion.identity.keys import SystemKeys
from bastion.identity.models import MfaChallenge, RecoveryCode, TotpCredential
from bastion.identity.passwords import PasswordHasher
from bastion.identity.sessions import MAX_TOKEN_CHARS
from bastion.identity.types import TotpEnrolment
from bastion.kernel.clock import as_utc
from bastion.kernel.ids import new_id, new_token, token_digest

TOTP_PURPOSE: Final = "identity.totp_secret"
# Registered by bootstrap for system data-key re-encryption (``crypto.SystemSealedColumn``).
SYSTEM_SEALED: Final = ((TotpCredential.secret_sealed, TOTP_PURPOSE),)
CHALLENGE_LIFETIME: Final = timedelta(minutes=5)
MAX_CHALLENGE_ATTEMPTS: Final = 5

Method = Literal["totp", "recovery_code"]


class SecondFactors:
    def __init__(self, *, keys: SystemKeys, hasher: PasswordHasher) -> None:
        self._keys = keys
        self._hasher = hasher

    # -- enrolment ------------------------------------------------------------------------

    def is_enabled(self, session: Session, user_id: str) -> bool:
        row = session.get(TotpCredential, user_id)
        return row is not None and row.confirmed_at is not None

    def begin_totp(
        self, session: Session, *, user_id: str, account: str, now: datetime
    ) -> TotpEnrolment:
        """A new pending secret (replacing any earlier pending one); TotpAlreadyEnabled if on."""
        row = session.get(TotpCredential, user_id)
        if row is not None and row.confirmed_at is not None:
            raise TotpAlreadyEnabled
        secret = totp.new_secret()
        sealed = self._keys.seal_system(
            purpose=TOTP_PURPOSE, record_id=user_id, plaintext=secret.encode("ascii")
        )
        if row is None:
            session.add(
                TotpCredential(
                    user_id=user_id,
                    secret_sealed=sealed,
                    created_at=now,
                    confirmed_at=None,
                    last_used_step=None,
                )
            )
        else:
            row.secret_sealed, row.created_at, row.last_used_step = sealed, now, None
        session.flush()
        uri = totp.provisioning_uri(secret, account=account)
        return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))

    def confirm_totp(
        self, session: Session, *, user_id: str, code: str, now: datetime
    ) -> list[str]:
        """Turn the pending secret on once ``code`` proves it; returns ten new recovery codes."""
        row = session.get(TotpCredential, user_id)
        if row is None or row.confirmed_at is not None:
            raise TotpNotPending
        if not self._accept_totp(session, row, code, now):
            raise TotpCodeInvalid(field="code")
        row.confirmed_at = now
        return self.replace_recovery_codes(session, user_id=user_id, now=now)

    def check_totp(self, session: Session, *, user_id: str, code: str, now: datetime) -> None:
        """A fresh TOTP code for a sensitive action; TotpNotEnabled / TotpCodeInvalid."""
        row = session.get(TotpCredential, user_id)
        if row is None or row.confirmed_at is None:
            raise TotpNotEnabled
        if not self._accept_totp(session, row, code, now):
            raise TotpCodeInvalid(field="code")

    def replace_recovery_codes(self, session: Session, *, user_id: str, now: datetime) -> list[str]:
        """Ten new codes; every earlier one stops working."""
        session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        codes = recovery.new_codes()
        for code in codes:
            session.add(
                RecoveryCode(
                    id=new_id(),
                    user_id=user_id,
                    code_hash=self._hasher.hash(recovery.canonical(code)),
                    created_at=now,
                    used_at=None,
                )
            )
        session.flush()
        return codes

    def recovery_codes_left(self, session: Session, user_id: str) -> int:
        return len(self._unused_codes(session, user_id))

    # -- login challenges -----------------------------------------------------------------

    def open_challenge(self, session: Session, *, user_id: str, now: datetime) -> str:
        token = new_token()
        session.add(
            MfaChallenge(
                id=new_id(),
                user_id=user_id,
                token_hash=token_digest(token),
                created_at=now,
                expires_at=now + CHALLENGE_LIFETIME,
                used_at=None,
                attempts=0,
            )
        )
        session.flush()
        return token

    def live_challenge(self, session: Session, *, token: str, now: datetime) -> MfaChallenge:
        """The challenge behind ``token`` if it can still be answered, else MfaCodeInvalid."""
        if len(token) > MAX_TOKEN_CHARS:
            raise MfaCodeInvalid
        digest = token_digest(token)
        row = session.scalar(select(MfaChallenge).where(MfaChallenge.token_hash == digest))
        if (
            row is None
            or not hmac.compare_digest(row.token_hash, digest)
            or row.used_at is not None
            or as_utc(row.expires_at) <= now
            or row.attempts >= MAX_CHALLENGE_ATTEMPTS
        ):
            raise MfaCodeInvalid
        return row

    def answer(
        self, session: Session, *, challenge: MfaChallenge, code: str, now: datetime
    ) -> Method | None:
        """Which factor ``code`` proves for the challenge's user (spending it), or None.

        A wrong answer counts against the challenge; the right one closes it.
        """
        method = self._prove(session, challenge.user_id, code, now)
        if method is None:
            challenge.attempts += 1
        else:
            challenge.used_at = now
        session.flush()
        return method

    def remove(self, session: Session, *, user_id: str) -> bool:
        """Turn TOTP off: delete the secret and every recovery code. False if it was not on."""
        row = session.get(TotpCredential, user_id)
        if row is None:
            return False
        session.delete(row)
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        session.flush()
        return True

    def prove(self, session: Session, *, user_id: str, code: str, now: datetime) -> Method | None:
        """Which factor ``code`` proves for ``user_id`` (spending it), or None."""
        return self._prove(session, user_id, code, now)

    def _prove(self, session: Session, user_id: str, code: str, now: datetime) -> Method | None:
        row = session.get(TotpCredential, user_id)
        if row is None or row.confirmed_at is None:
            return None
        if recovery.looks_like_recovery_code(code):
            return (
                "recovery_code" if self._spend_recovery_code(session, user_id, code, now) else None
            )
        return "totp" if self._accept_totp(session, row, code, now) else None

    def _accept_totp(self, session: Session, row: TotpCredential, code: str, now: datetime) -> bool:
        secret = self._keys.open_system(
            purpose=TOTP_PURPOSE, record_id=row.user_id, sealed=row.secret_sealed
        ).decode("ascii")
        step = totp.matching_step(secret, code.strip(), now=now, last_used_step=row.last_used_step)
        if step is None:
            return False
        result = session.execute(
            update(TotpCredential)
            .where(
                TotpCredential.user_id == row.user_id,
                or_(
                    TotpCredential.last_used_step.is_(None),
                    TotpCredential.last_used_step < step,
                ),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        )
        accepted = bool(getattr(result, "rowcount", 0))
        if accepted:
            row.last_used_step = step
        return accepted

    def _unused_codes(self, session: Session, user_id: str) -> list[RecoveryCode]:
        return list(
            session.scalars(
                select(RecoveryCode).where(
                    RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                )
            ).all()
        )

    def _spend_recovery_code(
        self, session: Session, user_id: str, code: str, now: datetime
    ) -> bool:
        candidate = recovery.canonical(code)
        for row in self._unused_codes(session, user_id):
            if not self._hasher.verify(row.code_hash, candidate):
                continue
            result = session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0))
        return False
