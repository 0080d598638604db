"""Identity value types: what other packages see instead of rows (frozen, secret-free reprs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import NewType

UserId = NewType("UserId", str)
SessionId = NewType("SessionId", str)


class IdentityAction(enum.StrEnum):
    """Audit actions recorded by the identity domain (``domain.resource_action``)."""

    SIGNUP = "identity.signup"
    EMAIL_VERIFIED = "identity.email_verified"
    LOGIN = "identity.login"
    LOGOUT = "identity.logout"
    PASSWORD_CHANGED = "identity.password_changed"  # noqa: S105 - a name, not a password
    PASSWORD_RESET_REQUESTED = "identity.password_reset_requested"  # noqa: S105 - a name, not a password
    PASSWORD_RESET = "identity.password_reset"  # noqa: S105 - a name, not a password
    SESSION_REVOKED = "identity.session_revoked"
    SESSIONS_REVOKED = "identity.sessions_revoked"
    USER_DISABLED = "identity.user_disabled"
    OPERATOR_BOOTSTRAPPED = "identity.operator_bootstrapped"
    MFA_CHALLENGED = "identity.mfa_challenged"
    TOTP_ENROLMENT_STARTED = "identity.totp_enrolment_started"
    TOTP_ENABLED = "identity.totp_enabled"
    RECOVERY_CODES_GENERATED = "identity.recovery_codes_generated"
    STEP_UP = "identity.step_up"
    EMAIL_CHANGE_REQUESTED = "identity.email_change_requested"
    EMAIL_CHANGED = "identity.email_changed"
    TOTP_DISABLED = "identity.totp_disabled"
    COMPROMISE_REPORTED = "identity.compromise_reported"
    USER_SESSIONS_REVOKED = "identity.user_sessions_revoked"
    PASSKEY_REGISTERED = "identity.passkey_registered"
    PASSKEY_REMOVED = "identity.passkey_removed"
    # A passkey answered with a signature counter at or below the stored one: a cloned
    # authenticator (WebAuthn L2 §6.1.1). Refused and audited.
    PASSKEY_SIGN_COUNT_REGRESSED = "identity.passkey_sign_count_regressed"


class TokenPurpose(enum.StrEnum):
    """What a single-use e-mailed token is good for; a token never works for another purpose."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a name, not a password
    CHANGE_EMAIL = "change_email"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a call came from, for sessions and the audit log. Client-controlled except ``ip``."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """A user as the API shows it. The e-mail is the normalised address."""

    id: UserId
    email: str
    name: str | None
    is_operator: bool
    email_verified: bool
    created_at: datetime
    mfa_enabled: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request: who, through which session, how.

    ``via_cookie`` tells the edge that CSRF protection applies to unsafe methods.
    ``must_enrol_mfa``: an operator without a confirmed second factor, who may do nothing but
    enrol one (the edge refuses every other route).
    """

    user_id: UserId
    session_id: SessionId
    is_operator: bool
    via_cookie: bool = False
    must_enrol_mfa: bool = False
    # An API key (``bst_...``) instead of a session: the key's id, the one tenant it is bound
    # to and the permissions it was given (strings: identity does not know access's
    # vocabulary). ``session_id`` is empty then. The edge lets such a principal call tenant
    # routes only; the tenant route narrows it to the creator's current role.
    api_key_id: str | None = None
    api_key_tenant_id: str | None = None
    api_key_permissions: frozenset[str] = frozenset()

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A new session. ``token`` and ``csrf_token`` are shown once and never stored in clear."""

    id: SessionId
    user_id: UserId
    token: str = field(repr=False)
    csrf_token: str = field(repr=False)
    expires_at: datetime
    idle_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session as its owner sees it in the session list."""

    id: SessionId
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


@dataclass(frozen=True, slots=True)
class RevokedCredentials:
    """What an operator's revocation ended: sessions, and credentials of other domains."""

    sessions: int
    other_credentials: int


@dataclass(frozen=True, slots=True)
class PasskeyInfo:
    """One registered passkey as its owner sees it (the public key stays inside identity)."""

    id: str
    name: str
    transports: tuple[str, ...]
    aaguid: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """A pending authenticator enrolment, shown once (the secret is stored sealed only)."""

    secret: str = field(repr=False)
    otpauth_uri: str = field(repr=False)
    qr_svg: str = field(repr=False)
