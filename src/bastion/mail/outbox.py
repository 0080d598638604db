"""Messages and transports. See the package docstring for the guarantees.

Errors::

    MailError
    ├── UnsafeMailHeader (InvalidInput)     a header value with CR/LF/control characters
    └── MailDeliveryFailed (Unavailable)    the transport could not take the message
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Literal, Protocol

from bastion.errors import AppError, InvalidInput, Unavailable
from bastion.kernel.ids import new_id

DIRECTORY_MODE = 0o700
# Messages hold single-use links (credentials until used): owner-only, like the key file.
FILE_MODE = 0o600
MAX_SUBJECT_CHARS = 200
MAX_NAME_CHARS = 200
MAX_SMTP_LINE = 998  # RFC 5322 §2.1.1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MailError(AppError):
    code = "mail.error"


class UnsafeMailHeader(MailError, InvalidInput):
    code = "mail.unsafe_header"
    public_message = "A name, address or subject contains characters not allowed in e-mail."


class MailDeliveryFailed(MailError, Unavailable):
    code = "mail.delivery_failed"
    public_message = "The e-mail could not be sent; try again later."


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One plain-text message to one recipient."""

    to_address: str
    subject: str
    body: str
    to_name: str | None = None


class Outbox(Protocol):
    """Takes a message for delivery; raises MailDeliveryFailed if it cannot."""

    def send(self, mail: OutgoingMail, *, now: datetime) -> None: ...


def _safe(value: str, what: str, limit: int) -> str:
    if _CONTROL.search(value) or len(value) > limit:
        raise UnsafeMailHeader(field=what)
    return value


def _address(address: str, name: str | None, what: str) -> Address:
    _safe(address, what, 254)
    if address.count("@") != 1 or any(c in address for c in ' <>,;"()[]\\'):
        raise UnsafeMailHeader(field=what)
    local, domain = address.split("@")
    display = _safe(name, f"{what}_name", MAX_NAME_CHARS) if name else ""
    # Address() quotes the display name as RFC 5322 requires, so "," or "<" in a name cannot
    # add a recipient.
    return Address(display_name=display, username=local, domain=domain)


def parse_sender(sender: str) -> Address:
    """``"Name <addr@host>"`` or ``"addr@host"`` as an Address; UnsafeMailHeader if unsafe."""
    _safe(sender, "sender", 320)
    name, address = parseaddr(sender)
    if not address:
        raise UnsafeMailHeader(field="sender")
    return _address(address, name or None, "sender")


def check_headers(mail: OutgoingMail) -> None:
    """UnsafeMailHeader if ``mail``'s recipient, name or subject could not be sent safely: the
    checks ``build_message`` makes, without building the message (cheap enough for a request)."""
    _address(mail.to_address, mail.to_name, "to")
    _safe(mail.subject, "subject", MAX_SUBJECT_CHARS)


def build_message(mail: OutgoingMail, *, sender: str, now: datetime) -> EmailMessage:
    """An RFC 5322 message; refuses control characters in every header value it sets."""
    message = EmailMessage(policy=SMTP_POLICY)
    from_address = parse_sender(sender)
    message["From"] = from_address
    message["To"] = _address(mail.to_address, mail.to_name, "to")
    message["Subject"] = _safe(mail.subject, "subject", MAX_SUBJECT_CHARS)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=from_address.domain or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to these
    if mail.body.isascii() and all(len(line) <= MAX_SMTP_LINE for line in mail.body.splitlines()):
        # Plain 7bit keeps links and tokens intact for readers (and tests) of the raw .eml;
        # quoted-printable would split them at 76 characters.
        message.set_content(mail.body, cte="7bit")
    else:
        message.set_content(mail.body)
    return message


class DirectoryOutbox:
    """Writes each message as ``<directory>/<time>-<id>.eml`` (development and tests).

    Each file appears whole (written aside, then renamed), owner-readable only.
    """

    def __init__(self, *, directory: Path, sender: str) -> None:
        parse_sender(sender)  # refuse a bad sender at start-up, not at the first message
        self._directory = directory
        self._sender = sender

    def send(self, mail: OutgoingMail, *, now: datetime) -> None:
        message = build_message(mail, sender=self._sender, now=now)
        try:
            self._directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
            name = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{new_id()}.eml"
            partial = self._directory / f".{name}.partial"
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(message.as_bytes())
            partial.rename(self._directory / name)
        except OSError as exc:
            raise MailDeliveryFailed(
                f"The e-mail could not be written to {self._directory}: {exc.strerror}"
            ) from exc


class SmtpOutbox:
    """Sends through an SMTP relay: STARTTLS (587) or implicit TLS (465), certificate verified.

    ``security="none"`` exists only for a relay on loopback (e.g. a local MTA); credentials are
    never sent without TLS.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        security: Literal["starttls", "tls", "none"],
        timeout_seconds: float,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        parse_sender(sender)
        if security == "none" and username is not None:
            raise ValueError("SMTP credentials need TLS (smtp_security starttls or tls)")
        self._host = host
        self._port = port
        self._sender = sender
        self._security = security
        self._timeout = timeout_seconds
        self._username = username
        self._password = password
        self._tls = tls_context or ssl.create_default_context()

    def send(self, mail: OutgoingMail, *, now: datetime) -> None:
        message = build_message(mail, sender=self._sender, now=now)
        try:
            client: smtplib.SMTP
            if self._security == "tls":
                client = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=self._timeout, context=self._tls
                )
            else:
                client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
            with client:
                if self._security == "starttls":
                    client.starttls(context=self._tls)
                if self._username is not None and self._password is not None:
                    client.login(self._username, self._password)
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # The reason goes to the operator's log through the caller; never the credentials.
            raise MailDeliveryFailed(f"SMTP delivery via {self._host}:{self._port} failed") from exc
