"""A mail queue for service-level tests: each message goes to a transport when (and only when)
the transaction that queued it commits, like the durable outbox but without the worker."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Session

from bastion.kernel.ids import new_id
from bastion.mail import Outbox, OutgoingMail, PreparedMail


class DeliverOnCommit:
    def __init__(self, transport: Outbox) -> None:
        self._transport = transport
        self._prepared: dict[str, OutgoingMail] = {}

    def prepare(self, mail: OutgoingMail, *, now: datetime) -> PreparedMail:  # noqa: ARG002
        prepared = PreparedMail(id=new_id(), sealed=b"")
        self._prepared[prepared.id] = mail
        return prepared

    def enqueue(self, session: Session, prepared: PreparedMail, *, now: datetime) -> None:
        mail = self._prepared.pop(prepared.id)
        event.listen(
            session, "after_commit", lambda _s: self._transport.send(mail, now=now), once=True
        )

    def send(self, session: Session, mail: OutgoingMail, *, now: datetime) -> None:
        self.enqueue(session, self.prepare(mail, now=now), now=now)
