"""SmtpOutbox against a real SMTP server on loopback (aiosmtpd), with STARTTLS."""

import socket
import ssl
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bastion.crypto import write_self_signed_certificate
from bastion.mail import MailDeliveryFailed, OutgoingMail, SmtpOutbox
from tests.support.server import free_port

SENDER = "Bastion <bastion@example.com>"


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ARG002 - aiosmtpd API
        self.envelopes.append(envelope)
        return "250 OK"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"relay-secret"
    return AuthResult(success=ok)


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed_certificate(cert, key)
    return cert, key


@pytest.fixture
def relay(tls_files):
    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


def _outbox(controller, tls_files, **overrides):
    values = {
        "host": "127.0.0.1",
        "port": controller.port,
        "sender": SENDER,
        "security": "starttls",
        "timeout_seconds": 5,
        "tls_context": ssl.create_default_context(cafile=str(tls_files[0])),
    }
    values.update(overrides)
    return SmtpOutbox(**values)


def test_a_message_is_delivered_over_starttls_with_credentials(relay, tls_files):
    controller, inbox = relay
    outbox = _outbox(controller, tls_files, username="bastion", password="relay-secret")
    mail = OutgoingMail("alice@example.com", "Reset", "token line\n", to_name="Alice")
    outbox.send(mail, now=_now())
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["alice@example.com"]
    assert envelope.mail_from == "bastion@example.com"
    assert b"Subject: Reset" in envelope.original_content


def test_wrong_relay_credentials_fail_clearly(relay, tls_files):
    controller, inbox = relay
    outbox = _outbox(controller, tls_files, username="bastion", password="wrong")
    with pytest.raises(MailDeliveryFailed):
        outbox.send(OutgoingMail("a@example.com", "Hi", "b"), now=_now())
    assert inbox.envelopes == []


def test_an_untrusted_relay_certificate_is_refused(relay, tls_files):
    controller, inbox = relay
    outbox = _outbox(controller, tls_files, tls_context=ssl.create_default_context())
    with pytest.raises(MailDeliveryFailed):
        outbox.send(OutgoingMail("a@example.com", "Hi", "b"), now=_now())
    assert inbox.envelopes == []


def test_a_silent_relay_times_out_instead_of_hanging():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        outbox = SmtpOutbox(
            host="127.0.0.1",
            port=silent.getsockname()[1],
            sender=SENDER,
            security="starttls",
            timeout_seconds=0.5,
        )
        started = time.monotonic()
        with pytest.raises(MailDeliveryFailed):
            outbox.send(OutgoingMail("a@example.com", "Hi", "b"), now=_now())
        assert time.monotonic() - started < 5


def test_credentials_are_never_sent_without_tls():
    with pytest.raises(ValueError, match="need TLS"):
        SmtpOutbox(
            host="127.0.0.1",
            port=25,
            sender=SENDER,
            security="none",
            timeout_seconds=1,
            username="u",
            password="p",
        )


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
