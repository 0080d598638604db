"""Which second factors a user has enrolled: a confirmed TOTP app (with its recovery codes) and
passkeys. One place decides, so login, step-up, the operator rule and tenant policies agree.

Both questions are answered by one statement (two indexed ``EXISTS``): for operators and tenants
that require MFA this runs on every request. A password login asks them in the statement that
reads the account (``repository.login_account``)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import ColumnElement, Exists, Table, exists, literal, select
from sqlalchemy.orm import Session

from bastion.identity.models import TotpCredential, WebAuthnCredential

_TOTP = cast(Table, TotpCredential.__table__)
_PASSKEYS = cast(Table, WebAuthnCredential.__table__)


def totp_enrolled(user_id: ColumnElement[str]) -> Exists:
    """``EXISTS`` a confirmed TOTP app of ``user_id`` (a value or a correlated column)."""
    return exists().where(_TOTP.c.user_id == user_id, _TOTP.c.confirmed_at.is_not(None))


def passkey_enrolled(user_id: ColumnElement[str]) -> Exists:
    """``EXISTS`` a passkey of ``user_id`` (a value or a correlated column)."""
    return exists().where(_PASSKEYS.c.user_id == user_id)


def _enrolled(session: Session, user_id: str) -> tuple[bool, bool]:
    """(a confirmed TOTP app, at least one passkey) in one round trip."""
    user = literal(user_id)
    row = session.execute(select(totp_enrolled(user), passkey_enrolled(user))).one()
    return bool(row[0]), bool(row[1])


def factor_names(*, totp: bool, passkey: bool) -> list[str]:
    """The factors an ``mfa-required`` answer lists: "totp", "recovery_code", "passkey"."""
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
