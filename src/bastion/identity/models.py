"""Identity tables. Rows never leave the domain: the service returns ``types`` values.

Every secret is stored derived, never in clear: passwords as argon2id, session, CSRF and e-mailed
tokens as SHA-256 (256-bit random tokens need no salt or stretching).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base

NAME_CHARS = 200
HASH_CHARS = 255
USER_AGENT_CHARS = 512
IP_CHARS = 45  # the longest textual IPv6 address (IPv4-mapped)


class BootstrapToken(Base):
    """A single-use link for creating the first operator. Only the SHA-256 of the token is kept."""

    __tablename__ = "bootstrap_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """An account.

    The e-mail address is personal data and never stored in clear: ``email_sealed`` is
    AES-256-GCM under the system data key, bound to this user id (a ciphertext moved to another
    row fails to open); ``email_index`` is a keyed HMAC of the lower-cased address (a blind
    index) for uniqueness and login lookups (see ``identity.emails`` and ``identity.keys``).
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(NAME_CHARS))
    password_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordHistory(Base):
    """Recent password hashes of a user (current one included), for the no-reuse rule."""

    __tablename__ = "password_history"
    __table_args__ = (Index("ix_password_history_user_id", "user_id", "id"),)

    # Insertion order, which timestamps cannot give (two changes in one clock tick, frozen
    # clocks in tests).
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    password_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuthSession(Base):
    """A login session. Looked up by ``token_hash`` on every request; never cached."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_revoked", "user_id", "revoked_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    csrf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a second factor was last proved in this session (MFA login, enrolment, step-up):
    # sensitive actions need it within identity.step_up_seconds.
    mfa_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Wrong codes for step-up or recovery-code regeneration in this session: at the limit the
    # session is revoked, so a stolen session cannot brute-force the second factor.
    mfa_failures: Mapped[int] = mapped_column(Integer, default=0)
    ip: Mapped[str | None] = mapped_column(String(IP_CHARS))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_CHARS))


class EmailToken(Base):
    """A single-use token sent by e-mail (verification, password reset, e-mail change); only its
    SHA-256. ``payload_sealed``: for an e-mail change, the new address, sealed to this token."""

    __tablename__ = "email_tokens"
    __table_args__ = (Index("ix_email_tokens_user_purpose", "user_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)


class TotpCredential(Base):
    """A user's TOTP secret, sealed under the system data key and bound to the user id.

    ``confirmed_at`` is None while enrolment is pending (the user has not yet proved a code);
    ``last_used_step`` is the latest accepted time step: a code for it or any earlier step is
    refused (no replay).
    """

    __tablename__ = "totp_credentials"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """One single-use recovery code, as an argon2id hash."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(HASH_CHARS))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MfaChallenge(Base):
    """The half-finished login between a correct password and a second factor (SHA-256 only)."""

    __tablename__ = "mfa_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class WebAuthnCredential(Base):
    """A registered passkey: its credential id, COSE public key and signature counter.

    Nothing here is secret (a public key proves nothing without the authenticator's private
    key), so it is stored in clear. ``sign_count`` only moves forward: an assertion at or
    below it is refused as a cloned authenticator.
    """

    __tablename__ = "webauthn_credentials"
    __table_args__ = (Index("ix_webauthn_credentials_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    # Comma-separated AuthenticatorTransport values ("internal,hybrid"), passed back as hints.
    transports: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    aaguid: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebAuthnChallenge(Base):
    """A ceremony challenge, stored as SHA-256 only, single-use and short-lived, bound to what
    it was issued for: the user and session (registration, step-up), the half-finished login
    (``mfa_challenge_id``), or nothing yet (passwordless login)."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    challenge_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(String(36))
    mfa_challenge_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
