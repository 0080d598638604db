"""Access tables: tenants and memberships (the access domain owns both)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MembershipRow(Base):
    """One user's role in one tenant. Tenant-owned: every query names ``tenant_id``."""

    __tablename__ = "memberships"

    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A custom role of this tenant (``tenant_roles``): while set, the member's permissions are
    # that role's, read on every request; ``role`` stays a built-in role (never owner).
    custom_role_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("tenant_roles.id", ondelete="RESTRICT"), index=True, default=None
    )

    def __repr__(self) -> str:
        return f"<MembershipRow tenant_id={self.tenant_id!r} user_id={self.user_id!r}>"


class InvitationRow(Base):
    """An e-mailed, single-use, expiring invitation to join a tenant with a role.

    The address is personal data: stored only sealed under the system data key, bound to this
    row's id. The token is stored as its SHA-256 digest.
    """

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[str | None] = mapped_column(String(36))
    # The API key it was sent with (None: a signed-in session): it dies with that key.
    invited_with_api_key: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[str | None] = mapped_column(String(36))


class ApiKeyRow(Base):
    """A tenant-bound API key (``access.api_keys``). Tenant-owned: every query names the tenant,
    except the lookup by digest that authenticates a request (no tenant is known yet then).

    The secret is never stored: ``token_hash`` is its SHA-256 and ``tail`` its last four
    characters (24 of 256 bits, enough to recognise a key in a list). ``user_id`` is the member
    who created it: the key acts as that member, never beyond that member's current role.
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_id_user_id", "tenant_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    tail: Mapped[str] = mapped_column(String(4))
    permissions: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(36))
    revoke_reason: Mapped[str | None] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"<ApiKeyRow id={self.id!r} tenant_id={self.tenant_id!r}>"


class TenantSettingsRow(Base):
    """A tenant's access policy; no row means the defaults (see ``access.policy``)."""

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    require_mfa: Mapped[bool] = mapped_column(Boolean)
    ip_allowlist: Mapped[str] = mapped_column(Text)  # JSON list of CIDR strings
    break_glass_requires_approval: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(36))

    def __repr__(self) -> str:
        return f"<TenantSettingsRow tenant_id={self.tenant_id!r}>"


class TenantRoleRow(Base):
    """A custom role of one tenant: a named set of permissions drawn from ``Permission``."""

    __tablename__ = "tenant_roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(200))
    permissions: Mapped[str] = mapped_column(Text)  # JSON list of Permission values
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BreakGlassGrantRow(Base):
    """An operator's time-limited, read-only access to one tenant, with its reason.

    Active while approved (or approval not required), not revoked and before ``expires_at``;
    anything else is inert. ``expires_at`` is set when the grant becomes active.
    """

    __tablename__ = "break_glass_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    operator_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(1000))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(36))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(36))
