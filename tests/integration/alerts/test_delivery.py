"""The delivery worker against real sinks on loopback: a verifying webhook receiver, an SMTP
server (aiosmtpd), a UDP syslog socket and stdout; retries, backoff, giving up, and two workers
racing for the same deliveries."""

import json
import socket
import threading
from datetime import timedelta

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bastion.alerts import SecurityEvent, Severity
from bastion.alerts.delivery import AlertDelivery
from bastion.alerts.models import AlertDeliveryRow, SecurityEventRow
from bastion.alerts.sinks import build_sinks
from bastion.alerts.webhook_verify import SIGNATURE_HEADER, WebhookVerifier
from bastion.mail import SmtpOutbox
from tests.integration.alerts.conftest import WEBHOOK_SECRET, alerts_settings
from tests.support.server import free_port
from tests.support.webhooks import Receiver

SENDER = "Bastion <bastion@example.com>"


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ARG002 - aiosmtpd API
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def receiver(clock):
    verifier = WebhookVerifier(WEBHOOK_SECRET, clock=lambda: clock.now().timestamp())
    receiver = Receiver(verifier).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def syslog_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def _webhook(receiver, **overrides):
    return {
        "kind": "webhook",
        "name": "hook",
        "url": receiver.url,
        "secret": WEBHOOK_SECRET,
        "min_severity": "info",
        **overrides,
    }


def _delivery(uow, clock, settings, outbox=None):
    client = httpx.Client(follow_redirects=False, trust_env=False)
    sinks = build_sinks(settings.sinks, outbox=outbox, client=client, clock=clock)
    return AlertDelivery(uow=uow, settings=settings, sinks=sinks, clock=clock)


def _record(uow, make_events, settings, severity=Severity.CRITICAL, n=0):
    with uow.begin() as session:
        return make_events(settings).record(
            session,
            SecurityEvent(
                type="audit.chain_damaged",
                severity=severity,
                subject="audit-chain:system",
                details={"first_bad_seq": 3, "n": n},
            ),
        )


def _deliveries(uow):
    with uow.begin() as session:
        return list(session.scalars(select(AlertDeliveryRow).order_by(AlertDeliveryRow.sink)))


@pytest.fixture
def rig(uow, clock, make_events):
    return uow, clock, make_events


def test_every_sink_delivers_once_and_the_receiver_rejects_a_replay(
    rig, receiver, smtp, syslog_socket, capsys
):
    uow, clock, make_events = rig
    controller, inbox = smtp
    settings = alerts_settings(
        _webhook(receiver),
        {
            "kind": "email",
            "name": "mail",
            "min_severity": "high",
            "recipients": ["sec@example.com"],
        },
        {"kind": "stdout", "name": "console", "min_severity": "info"},
        {
            "kind": "syslog",
            "name": "siem",
            "min_severity": "info",
            "port": syslog_socket.getsockname()[1],
        },
    )
    outbox = SmtpOutbox(
        host="127.0.0.1",
        port=controller.port,
        sender=SENDER,
        security="none",
        timeout_seconds=5,
    )
    stored = _record(uow, make_events, settings)
    delivery = _delivery(uow, clock, settings, outbox)

    report = delivery.run()

    assert (report.sent, report.failed, report.abandoned) == (4, 0, 0)
    assert [row.status for row in _deliveries(uow)] == ["sent"] * 4
    # Webhook: verified by the receiver (signature, freshness, id) and accepted once.
    assert [event["id"] for event in receiver.accepted] == [stored.id]
    assert receiver.accepted[0]["severity"] == "critical"
    captured = receiver.requests[0]
    replayed = httpx.post(
        receiver.url,
        content=captured.body,
        headers={SIGNATURE_HEADER: captured.headers[SIGNATURE_HEADER.lower()]},
    )
    assert replayed.status_code == 409
    forged = httpx.post(
        receiver.url,
        content=captured.body.replace(b"critical", b"info"),
        headers={SIGNATURE_HEADER: captured.headers[SIGNATURE_HEADER.lower()]},
    )
    assert forged.status_code == 400
    # E-mail, stdout and syslog each carry the same event.
    assert len(inbox.envelopes) == 1
    assert b"audit.chain_damaged" in inbox.envelopes[0].content
    line = json.loads(capsys.readouterr().out.strip())
    assert line["bastion_security_event"]["id"] == stored.id
    datagram = syslog_socket.recv(65535).decode()
    assert datagram.startswith("<")  # a syslog priority
    assert json.loads(datagram.split("bastion: ", 1)[1].rstrip("\x00"))["id"] == stored.id
    # Nothing is sent twice.
    assert delivery.run().sent == 0
    assert len(receiver.requests) == 3


def test_a_hanging_receiver_is_retried_with_backoff_then_given_up_and_the_event_kept(
    uow, clock, make_events, receiver
):
    receiver.mode = "hang"
    settings = alerts_settings(
        _webhook(receiver, timeout_seconds=0.3),
        max_attempts=3,
        retry_base_seconds=60,
        retry_max_seconds=90,
    )
    stored = _record(uow, make_events, settings)
    delivery = _delivery(uow, clock, settings)
    start = clock.now()

    assert delivery.run().failed == 1  # bounded by the timeout, not by the receiver
    [row] = _deliveries(uow)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "webhook timed out")
    assert row.next_attempt_at.replace(tzinfo=None) == (start + timedelta(seconds=60)).replace(
        tzinfo=None
    )
    clock.set(start + timedelta(seconds=59))
    assert delivery.run().failed == 0  # not due yet
    assert len(receiver.requests) <= 1

    clock.set(start + timedelta(seconds=60))
    assert delivery.run().failed == 1
    [row] = _deliveries(uow)
    assert row.attempts == 2
    # The doubled wait (120 s) is capped at retry_max (90 s).
    assert row.next_attempt_at.replace(tzinfo=None) == (start + timedelta(seconds=150)).replace(
        tzinfo=None
    )

    clock.set(start + timedelta(seconds=150))
    assert delivery.run().abandoned == 1
    [row] = _deliveries(uow)
    assert (row.status, row.attempts) == ("failed", 3)
    receiver.mode = "ok"
    clock.set(start + timedelta(days=1))
    assert delivery.run().sent == 0  # given up for good
    with uow.begin() as session:
        assert session.get(SecurityEventRow, stored.id) is not None  # nothing lost


class CountingSink:
    kind = "stdout"

    def __init__(self):
        self.sent = []
        self.lock = threading.Lock()

    def send(self, alert):
        with self.lock:
            self.sent.append(alert.event_id)


def test_two_workers_racing_send_each_delivery_exactly_once(uow, clock, make_events):
    settings = alerts_settings(
        {"kind": "stdout", "name": "console", "min_severity": "info"},
        {"kind": "stdout", "name": "removed", "min_severity": "critical"},
        batch_size=5,
    )
    recorded = [_record(uow, make_events, settings, Severity.HIGH, n) for n in range(12)]
    recorded.append(_record(uow, make_events, settings, Severity.CRITICAL, 99))
    sink = CountingSink()
    # "removed" is no longer configured: its delivery is given up, not retried forever.
    workers = [
        AlertDelivery(uow=uow, settings=settings, sinks={"console": sink}, clock=clock)
        for _ in range(2)
    ]
    barrier = threading.Barrier(2)
    reports = []

    def run(worker):
        barrier.wait()
        reports.append(worker.run())

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(sink.sent) == sorted(r.id for r in recorded)
    assert sum(r.sent for r in reports) == len(recorded)
    assert sum(r.abandoned for r in reports) == 1
    statuses = {(row.sink, row.status) for row in _deliveries(uow)}
    assert statuses == {("console", "sent"), ("removed", "failed")}
