"""The durable outbox: messages are stored in the caller's transaction and delivered later.

Why: sending inside a request made a forgotten-password request for a known address measurably
slower than for an unknown one (an account-enumeration timing oracle), and an SMTP outage failed
the request. Now a request only inserts a sealed row; ``delivery.MailDispatcher`` sends it after
the commit (and never for a transaction that rolled back).

SQLite note: sealing may reserve a block of encryptions in the keyring's own short transaction
(``crypto.keyring``), which would wait behind a request that already holds the write lock. So
``prepare`` (which seals) is separate from ``enqueue`` (which writes): a flow whose first write
comes before its mail prepares the mail first.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from bastion.kernel.ids import new_id
from bastion.mail.models import QueuedMail
from bastion.mail.outbox import OutgoingMail, check_headers

SEAL_PURPOSE: Final = "mail.outbox"
# Registered by bootstrap for system data-key re-encryption (``crypto.SystemSealedColumn``).
SYSTEM_SEALED: Final = ((QueuedMail.sealed, SEAL_PURPOSE),)


class MailSealer(Protocol):
    """The keyring recipes the outbox needs (``crypto.Keyring`` satisfies it)."""

    def seal_system(self, *, purpose: str, record_id: str, plaintext: bytes) -> bytes: ...
    def open_system(self, *, purpose: str, record_id: str, sealed: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PreparedMail:
    """A message already checked and sealed, ready to insert (no database access yet)."""

    id: str
    sealed: bytes = field(repr=False)


class MailQueue(Protocol):
    """Takes messages for later delivery, inside the caller's transaction."""

    def prepare(self, mail: OutgoingMail, *, now: datetime) -> PreparedMail: ...
    def enqueue(self, session: Session, prepared: PreparedMail, *, now: datetime) -> None: ...
    def send(self, session: Session, mail: OutgoingMail, *, now: datetime) -> None: ...


def seal_mail(sealer: MailSealer, row_id: str, mail: OutgoingMail) -> bytes:
    payload = {
        "to": mail.to_address,
        "name": mail.to_name,
        "subject": mail.subject,
        "body": mail.body,
    }
    plaintext = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return sealer.seal_system(purpose=SEAL_PURPOSE, record_id=row_id, plaintext=plaintext)


def open_mail(sealer: MailSealer, row_id: str, sealed: bytes) -> OutgoingMail:
    """The message of row ``row_id``; the keyring's integrity error if it was moved or altered."""
    payload = json.loads(sealer.open_system(purpose=SEAL_PURPOSE, record_id=row_id, sealed=sealed))
    return OutgoingMail(
        to_address=payload["to"],
        subject=payload["subject"],
        body=payload["body"],
        to_name=payload["name"],
    )


class SqlMailQueue:
    """``MailQueue`` over the ``mail_outbox`` table.

    ``pending`` is set after a transaction that queued mail commits, so an in-process worker
    wakes at once instead of at its next poll.
    """

    def __init__(self, *, sealer: MailSealer) -> None:
        self._sealer = sealer
        self.pending = threading.Event()

    # ``now`` is part of the MailQueue contract (test queues use it); the row takes its time at
    # enqueue.
    def prepare(self, mail: OutgoingMail, *, now: datetime) -> PreparedMail:  # noqa: ARG002
        """Check the headers (UnsafeMailHeader now, not at delivery) and seal the message."""
        check_headers(mail)
        row_id = new_id()
        return PreparedMail(id=row_id, sealed=seal_mail(self._sealer, row_id, mail))

    def enqueue(self, session: Session, prepared: PreparedMail, *, now: datetime) -> None:
        session.add(
            QueuedMail(
                id=prepared.id,
                sealed=prepared.sealed,
                created_at=now,
                next_attempt_at=now,
                attempts=0,
                lease_holder=None,
                lease_expires_at=None,
                last_error=None,
                failed_at=None,
            )
        )
        session.flush()
        event.listen(session, "after_commit", self._committed, once=True)

    def send(self, session: Session, mail: OutgoingMail, *, now: datetime) -> None:
        """``prepare`` then ``enqueue``: for flows that sealed something earlier in the same
        transaction (the keyring's reservation is then already made)."""
        self.enqueue(session, self.prepare(mail, now=now), now=now)

    def _committed(self, _session: Session) -> None:
        self.pending.set()
