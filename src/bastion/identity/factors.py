"""Which second factors a user has enrolled: a confirmed TOTP app (with its recovery codes) and
passkeys. One place decides, so login, step-up, the operator rule and tenant policies agree."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.identity.models import TotpCredential, WebAuthnCredential


def enrolled_factors(session: Session, user_id: str) -> list[str]:
    """The factors an ``mfa-required`` answer lists: "totp", "recovery_code", "passkey"."""
    factors = []
    totp = session.get(TotpCredential, user_id)
    if totp is not None and totp.confirmed_at is not None:
        factors += ["totp", "recovery_code"]
    if has_passkey(session, user_id):
        factors.append("passkey")
    return factors


def has_passkey(session: Session, user_id: str) -> bool:
    found = session.scalar(
        select(WebAuthnCredential.id).where(WebAuthnCredential.user_id == user_id).limit(1)
    )
    return found is not None


def has_second_factor(session: Session, user_id: str) -> bool:
    """True when the user can prove a second factor (at most two indexed reads)."""
    totp = session.get(TotpCredential, user_id)
    return (totp is not None and totp.confirmed_at is not None) or has_passkey(session, user_id)
