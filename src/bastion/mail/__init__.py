"""Outgoing e-mail: building safe messages, the durable outbox, and the transports.

Owns message construction (no header injection: every name, address and subject with a CR, LF or
other control character is refused), the ``mail_outbox`` table (messages stored sealed in the
caller's transaction, delivered afterwards with leases and retries: ``queue``, ``delivery``), a
directory transport that writes ``.eml`` files (development and tests) and an SMTP transport
(STARTTLS or implicit TLS, certificate checked, finite timeout). It knows nothing about accounts
or why a message is sent; domains hand it an ``OutgoingMail``. Infrastructure like ``db``: any
domain may import it.
"""

from bastion.mail.delivery import (
    DeliveryReport,
    MailDispatcher,
    MailWorker,
    OutboxStatus,
    RetryPolicy,
)
from bastion.mail.outbox import (
    DirectoryOutbox,
    MailDeliveryFailed,
    MailError,
    Outbox,
    OutgoingMail,
    SmtpOutbox,
    UnsafeMailHeader,
    build_message,
    check_headers,
)
from bastion.mail.queue import MailQueue, MailSealer, PreparedMail, SqlMailQueue

__all__ = [
    "DeliveryReport",
    "DirectoryOutbox",
    "MailDeliveryFailed",
    "MailDispatcher",
    "MailError",
    "MailQueue",
    "MailSealer",
    "MailWorker",
    "Outbox",
    "OutboxStatus",
    "OutgoingMail",
    "PreparedMail",
    "RetryPolicy",
    "SmtpOutbox",
    "SqlMailQueue",
    "UnsafeMailHeader",
    "build_message",
    "check_headers",
]
