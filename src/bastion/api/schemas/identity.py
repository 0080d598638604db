"""Request and response shapes of the identity endpoints (auth, me, bootstrap).

Sizes are bounded here, at the edge, before any hashing: a password field longer than the
policy's ceiling is refused by shape (422 naming the field) without spending argon2 on it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from bastion.identity import normalise_email
from bastion.identity.errors import InvalidEmail

# The widest policy allowed by settings (identity.password_max_length le=1024); the configured
# maximum is then enforced by the policy with its own named rule.
MAX_PASSWORD_FIELD_CHARS = 1024
MAX_TOKEN_FIELD_CHARS = 128
MAX_PASSKEY_JSON_CHARS = 64 * 1024

Email = Annotated[str, StringConstraints(min_length=3, max_length=320)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_FIELD_CHARS)]
Name = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
Token = Annotated[
    str,
    StringConstraints(min_length=20, max_length=MAX_TOKEN_FIELD_CHARS, pattern=r"^[A-Za-z0-9_-]+$"),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _WithEmail(_Request):
    email: Email

    @field_validator("email")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        try:
            normalise_email(value)
        except InvalidEmail:
            raise ValueError("not a valid e-mail address") from None
        return value


class SignupRequest(_WithEmail):
    password: Password
    name: Name | None = None


class LoginRequest(_Request):
    # Not validated as an address: a malformed one must answer exactly like an unknown one.
    email: Email
    password: Password


class ForgotPasswordRequest(_Request):
    # Same: no shape oracle beyond the size bound.
    email: Email


class ResetPasswordRequest(_Request):
    token: Token
    password: Password


class VerifyEmailRequest(_Request):
    token: Token


class ChangeEmailRequest(_WithEmail):
    # Re-authentication (ASVS V7.5.1); with a second factor on, a recent step-up as well.
    password: Password


class ChangePasswordRequest(_Request):
    current_password: Password
    new_password: Password


class BootstrapRequest(_WithEmail):
    token: Token
    password: Password
    name: Name | None = None


TotpCode = Annotated[str, StringConstraints(min_length=6, max_length=64)]


class MfaRequest(_Request):
    """Exactly one of ``code`` and ``passkey``."""

    mfa_token: Token
    # A 6-digit TOTP code or a recovery code ("abcd-efgh-ijkl-mnop").
    code: TotpCode | None = None
    # A WebAuthn assertion answering /api/v1/auth/mfa/passkey/options (api.schemas.passkeys).
    passkey: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_factor(self) -> MfaRequest:
        if (self.code is None) == (self.passkey is None):
            raise ValueError("send exactly one of code and passkey")
        if self.passkey is not None and len(json.dumps(self.passkey)) > MAX_PASSKEY_JSON_CHARS:
            raise ValueError(f"a passkey assertion is at most {MAX_PASSKEY_JSON_CHARS} characters")
        return self


class CodeRequest(_Request):
    code: TotpCode


class TotpEnrolment(BaseModel):
    """Shown once: the secret is stored sealed and never returned again."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodes(BaseModel):
    """Shown once: only argon2 hashes are kept. Each code works once."""

    recovery_codes: list[str]


class AccountCreated(BaseModel):
    id: str
    email: str


class Account(BaseModel):
    id: str
    email: str
    name: str | None
    is_operator: bool
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime


class SessionToken(BaseModel):
    """A new session. ``csrf_token`` goes in ``X-CSRF-Token`` on cookie-authenticated writes."""

    token: str
    expires_at: datetime
    idle_expires_at: datetime
    csrf_token: str


class SessionItem(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionList(BaseModel):
    items: list[SessionItem]
    next_cursor: str | None = None


class Accepted(BaseModel):
    status: str = Field(default="accepted")
    detail: str
