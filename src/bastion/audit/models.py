"""Audit tables. Only this package reads or writes them (other domains call ``AuditLog``).

Times that are hashed (an entry's ``time``, checkpoint ``created_at``) are stored as their canonical
text (``YYYY-MM-DDTHH:MM:SS.ffffffZ``): the stored value is then exactly the hashed value, with no
driver conversion in between, and fixed-width UTC text sorts in time order on both backends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.audit.derived import DERIVED, EntryMember
from bastion.db.base import Base


def _derived(column: str) -> Computed:
    member, as_json = _MEMBERS[column]
    return Computed(EntryMember(member, as_json=as_json))


_MEMBERS: Final = {column: (member, as_json) for column, member, _, as_json in DERIVED}


class AuditEventRow(Base):
    """One hash-chained event. Append-only: database triggers refuse UPDATE and DELETE.

    ``entry`` holds the canonical JSON the chain hashes; every other content column is generated
    from it by the database (see derived.py), so none can be edited on its own.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        PrimaryKeyConstraint("chain_id", "seq", name="pk_audit_events"),
        Index("ix_audit_events_chain_id_occurred_at", "chain_id", "occurred_at"),
        Index("ix_audit_events_chain_id_actor", "chain_id", "actor"),
    )

    chain_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    # canonical.entry_text: written once, at append, in the same INSERT as its hash.
    entry: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[str] = mapped_column(String(27), _derived("occurred_at"))
    tenant_id: Mapped[str | None] = mapped_column(String(36), _derived("tenant_id"))
    actor: Mapped[str | None] = mapped_column(String(64), _derived("actor"))
    action: Mapped[str] = mapped_column(String(128), _derived("action"))
    target: Mapped[str | None] = mapped_column(String(256), _derived("target"))
    outcome: Mapped[str] = mapped_column(String(16), _derived("outcome"))
    source_ip: Mapped[str | None] = mapped_column(String(45), _derived("source_ip"))
    user_agent: Mapped[str | None] = mapped_column(String(512), _derived("user_agent"))
    request_id: Mapped[str | None] = mapped_column(String(128), _derived("request_id"))
    # The details object's canonical JSON text, as it appears inside entry.
    details: Mapped[str] = mapped_column(Text, _derived("details"))

    def __repr__(self) -> str:
        return f"<AuditEventRow chain={self.chain_id!r} seq={self.seq!r}>"


class AuditChainHead(Base):
    """The last sequence number and hash of a chain; its row lock serialises appends."""

    __tablename__ = "audit_chain_heads"

    chain_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signed statement of a chain's head, also exported outside the database."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (PrimaryKeyConstraint("chain_id", "seq", name="pk_audit_checkpoints"),)

    chain_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(27))
    prev_seq: Mapped[int] = mapped_column(BigInteger)
    entries_digest: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
    # Delivery bookkeeping, outside the signature: retried until done, never blocks appends.
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)

    def __repr__(self) -> str:
        return f"<AuditCheckpointRow chain={self.chain_id!r} seq={self.seq!r}>"


class AuditActor(Base):
    """Pseudonym → user id. Deleted on erasure; the chain keeps only the pseudonym."""

    __tablename__ = "audit_actors"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<AuditActor pseudonym={self.pseudonym!r}>"
