"""Keyring tables. Keys are stored only wrapped by the master key; see migration 0002.

``kek_id`` on every wrapped row names the master key that wrapped it, which is what makes KEK
rotation resumable (rows already under the new key are skipped) and lets start-up tell "wrong key"
apart from "rotation not finished".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base

STATUS_ACTIVE = "active"  # the version new encryptions use (exactly one per owner)
STATUS_SUPERSEDED = "superseded"  # decrypts old data, never encrypts
STATUS_RETIRED = "retired"  # key material destroyed once nothing used it
# At most one active version per owner, enforced by the database (a partial unique index, which
# SQLite and PostgreSQL both support) so two concurrent rotations cannot both win.
ACTIVE_ONLY = text("status = 'active'")


class TenantKey(Base):
    """One version of a tenant's data key (DEK) plus the tenant's blind-index key.

    The blind-index key is derived once (HKDF from the first DEK) and carried forward, wrapped
    again, into every later version, so exact-match indexes survive DEK rotation and retirement.
    """

    __tablename__ = "crypto_tenant_keys"
    __table_args__ = (
        Index(
            "uq_crypto_tenant_keys_active",
            "tenant_id",
            unique=True,
            sqlite_where=ACTIVE_ONLY,
            postgresql_where=ACTIVE_ONLY,
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_index_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(64))
    # Encryptions reserved (>= performed): see Keyring's counter contract.
    encryptions: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<TenantKey tenant={self.tenant_id!r} version={self.version} {self.status}>"


class SystemKey(Base):
    """Bastion's own keys: ``data`` (versioned DEK), ``mac`` (HMAC root), ``signing`` (Ed25519)."""

    __tablename__ = "crypto_system_keys"
    __table_args__ = (
        Index(
            "uq_crypto_system_keys_active",
            "name",
            unique=True,
            sqlite_where=ACTIVE_ONLY,
            postgresql_where=ACTIVE_ONLY,
        ),
    )

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(64))
    encryptions: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<SystemKey name={self.name!r} version={self.version} {self.status}>"


class Erasure(Base):
    """The erasure ledger: a tenant whose keys were destroyed. Restores replay it."""

    __tablename__ = "crypto_erasures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), unique=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    versions_destroyed: Mapped[int] = mapped_column(Integer)


# The owner under which re-encryption passes over system-sealed columns keep their progress in
# crypto_reencryption_jobs (``tenant_id`` is the pass's owner); never accepted as a tenant id.
SYSTEM_JOB_OWNER = "~system"


class ReencryptionJob(Base):
    """Progress of one re-encryption pass over one store of sealed data, for one tenant."""

    __tablename__ = "crypto_reencryption_jobs"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    to_version: Mapped[int] = mapped_column(Integer)
    cursor: Mapped[str | None] = mapped_column(String(255))
    rows_done: Mapped[int] = mapped_column(BigInteger)
    finished: Mapped[bool] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<ReencryptionJob tenant={self.tenant_id!r} target={self.target!r}>"
