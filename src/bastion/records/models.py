"""Records tables: collections, sealed records and their blind-index entries.

Plaintext kept on purpose, and nothing more: collection names, schemas and indexed field names
(metadata the tenant chose, needed to route and validate), record ids (random), versions and
times. Record contents exist only sealed; an indexed value only as its HMAC (``digest``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base


class CollectionRow(Base):
    """A tenant's collection. Tenant-owned: every query names ``tenant_id``."""

    __tablename__ = "collections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    # Canonical JSON text of the schema, or None.
    json_schema: Mapped[str | None] = mapped_column(Text)
    # JSON array of field names.
    indexed_fields: Mapped[str] = mapped_column(Text)
    audit_reads: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecordRow(Base):
    """One record: its JSON document sealed under the tenant's data key, bound to the tenant,
    the collection id and the record id. ``version`` counts writes and makes the ETag."""

    __tablename__ = "records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    collection_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("collections.id", ondelete="CASCADE")
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RecordIndexRow(Base):
    """The blind index of one indexed field of one record: HMAC-SHA256 under the tenant's
    blind-index key, never the value."""

    __tablename__ = "record_index_entries"

    record_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("records.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), ForeignKey("tenants.id", ondelete="CASCADE"))
    collection_id: Mapped[str] = mapped_column(String(36))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))

    def __repr__(self) -> str:
        return f"<RecordIndexRow record_id={self.record_id!r} field={self.field!r}>"
