"""Which second factors a user has enrolled: a confirmed TOTP app (with its recovery codes) and
passkeys. One place decides, so login, step-up, the operator rule and tenant policies agree.

Both questions are answered by one statement (two indexed ``EXISTS``): this runs on every login
and, for operators and tenants that require MFA, on every request."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bastion.identity.models import TotpCredential, WebAuthnCredential


def _enrolled(session: Session, user_id: str) -> tuple[bool, bool]:
    """(a confirmed TOTP app, at least one passkey) in one round trip."""
    totp = exists().where(
        TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None)
    )
    passkey = exists().where(WebAuthnCredential.user_id == user_id)
    row = session.execute(select(totp, passkey)).one()
    return bool(row[0]), bool(row[1])


def enrolled_factors(session: Session, user_id: str) -> list[str]:
    """The factors an ``mfa-required`` answer lists: "totp", "recovery_code", "passkey"."""
    totp, passkey = _enrolled(session, user_id)
    return [*(["totp", "recovery_code"] if totp else []), *(["passkey"] if passkey else [])]


def has_passkey(session: Session, user_id: str) -> bool:
    found = session.scalar(
        select(WebAuthnCredential.id).where(WebAuthnCredential.user_id == user_id).limit(1)
    )
    return found is not None


def has_second_factor(session: Session, user_id: str) -> bool:
    """True when the user can prove a second factor (one statement)."""
    totp, passkey = _enrolled(session, user_id)
    return totp or passkey
