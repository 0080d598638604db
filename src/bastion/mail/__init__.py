"""Outgoing e-mail: building safe messages and handing them to a transport.

Owns message construction (no header injection: every name, address and subject with a CR, LF or
other control character is refused), a directory transport that writes ``.eml`` files (development
and tests) and an SMTP transport (STARTTLS or implicit TLS, certificate checked, finite timeout).
It knows nothing about accounts or why a message is sent; domains hand it an ``OutgoingMail``.
Infrastructure like ``db``: any domain may import it.
"""

from bastion.mail.outbox import (
    DirectoryOutbox,
    MailDeliveryFailed,
    MailError,
    Outbox,
    OutgoingMail,
    SmtpOutbox,
    UnsafeMailHeader,
    build_message,
)

__all__ = [
    "DirectoryOutbox",
    "MailDeliveryFailed",
    "MailError",
    "Outbox",
    "OutgoingMail",
    "SmtpOutbox",
    "UnsafeMailHeader",
    "build_message",
]
