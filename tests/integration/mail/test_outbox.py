"""The durable outbox on SQLite and PostgreSQL: queued in the caller's transaction, sealed,
delivered after the commit by a dispatcher with per-message leases and retries."""

import email
import email.policy
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.mail import (
    MailDeliveryFailed,
    MailDispatcher,
    OutgoingMail,
    RetryPolicy,
    SmtpOutbox,
    SqlMailQueue,
    UnsafeMailHeader,
)
from bastion.mail.models import QueuedMail
from tests.support.identity import CLIENT, TOKEN_LINE, make_keyring, make_rig, read_mails
from tests.support.server import free_port

SENDER = "Bastion <bastion@example.com>"
RETRY = RetryPolicy(max_attempts=3, base=timedelta(seconds=30), cap=timedelta(minutes=10))
PASSWORD = "correct horse battery staple 42"


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ARG002 - aiosmtpd API
        self.envelopes.append(envelope)
        return "250 OK"


class Recording:
    """A transport that keeps what it was given (and can fail, or run something mid-send)."""

    def __init__(self, *, fail=False, during_send=None):
        self.sent = []
        self.fail = fail
        self.during_send = during_send

    def send(self, mail, *, now):  # noqa: ARG002 - the Outbox signature
        if self.during_send is not None:
            self.during_send()
        if self.fail:
            raise MailDeliveryFailed("the relay is down (test)")
        self.sent.append(mail)


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def rig(engine, tmp_path):
    keyring = make_keyring(engine, tmp_path / "master.key")
    queue = SqlMailQueue(sealer=keyring)
    return make_rig(engine, tmp_path / "mail", keyring=keyring, mail_queue=queue), queue


def _dispatcher(rig, transport, holder="worker-a"):
    identity_rig, _queue = rig
    return MailDispatcher(
        uow=identity_rig.uow,
        sealer=identity_rig.keyring,
        transport=transport,
        clock=identity_rig.clock,
        holder=holder,
        retry=RETRY,
    )


def _queue_one(rig, to="alice@example.com", body="Reset at https://x/r?t=SECRET-LINK"):
    identity_rig, queue = rig
    with identity_rig.uow.begin() as session:
        queue.send(session, OutgoingMail(to, "Reset", body), now=identity_rig.clock.now())


def _rows(rig):
    with rig[0].uow.begin() as session:
        return list(session.scalars(select(QueuedMail)).all())


def test_a_queued_message_is_sealed_and_delivered_once_after_the_commit(rig):
    _queue_one(rig)
    [row] = _rows(rig)
    assert b"alice@example.com" not in row.sealed
    assert b"SECRET-LINK" not in row.sealed
    assert rig[1].pending.is_set()  # the in-process worker is woken by the commit
    transport = Recording()
    report = _dispatcher(rig, transport).deliver_due()
    assert report.sent == 1
    assert [(m.to_address, m.body) for m in transport.sent] == [
        ("alice@example.com", "Reset at https://x/r?t=SECRET-LINK")
    ]
    assert _rows(rig) == []
    assert _dispatcher(rig, transport).deliver_due().sent == 0
    assert len(transport.sent) == 1


def test_mail_of_a_rolled_back_transaction_or_with_unsafe_headers_is_never_queued(rig):
    identity_rig, queue = rig

    def failing_request():
        with identity_rig.uow.begin() as session:
            mail = OutgoingMail("a@example.com", "Hi", "b")
            queue.send(session, mail, now=identity_rig.clock.now())
            raise RuntimeError("the request failed after queueing")

    with pytest.raises(RuntimeError):
        failing_request()
    assert _rows(rig) == []
    assert _dispatcher(rig, Recording()).deliver_due().sent == 0
    # A header injection is refused when the message is queued, not at delivery.
    with pytest.raises(UnsafeMailHeader), identity_rig.uow.begin() as session:
        queue.send(
            session,
            OutgoingMail("a@example.com", "Hi\r\nBcc: evil@example.net", "b"),
            now=identity_rig.clock.now(),
        )
    assert _rows(rig) == []


def test_a_message_leased_by_one_process_is_not_sent_by_another(rig):
    _queue_one(rig)
    other = Recording()
    other_dispatcher = _dispatcher(rig, other, holder="worker-b")
    reports = []
    # While worker A is in the middle of sending, worker B runs: it must find nothing to send.
    first = Recording(during_send=lambda: reports.append(other_dispatcher.deliver_due()))
    assert _dispatcher(rig, first, holder="worker-a").deliver_due().sent == 1
    assert reports[0].sent == 0
    assert (len(first.sent), len(other.sent)) == (1, 0)


def test_a_failed_attempt_is_retried_with_backoff_then_given_up(rig):
    identity_rig, _ = rig
    _queue_one(rig)
    down = Recording(fail=True)
    dispatcher = _dispatcher(rig, down)
    assert dispatcher.deliver_due().retrying == 1
    [row] = _rows(rig)
    assert (row.attempts, row.lease_holder, row.last_error) == (1, None, "MailDeliveryFailed")
    assert dispatcher.deliver_due().retrying == 0  # not due again yet
    identity_rig.advance(seconds=30)
    assert dispatcher.deliver_due().retrying == 1
    identity_rig.advance(seconds=59)
    assert dispatcher.deliver_due().retrying == 0  # the second wait doubles
    identity_rig.advance(seconds=1)
    assert dispatcher.deliver_due().failed == 1
    assert dispatcher.status().failed == 1
    identity_rig.advance(hours=24)
    up = Recording()
    assert _dispatcher(rig, up).deliver_due().sent == 0
    assert up.sent == []


def test_a_sealed_body_moved_to_another_row_is_never_sent(rig):
    _queue_one(rig, to="alice@example.com")
    _queue_one(rig, to="bob@example.com")
    first, second = _rows(rig)
    with rig[0].uow.begin() as session:
        session.execute(
            update(QueuedMail).where(QueuedMail.id == second.id).values(sealed=first.sealed)
        )
    transport = Recording()
    report = _dispatcher(rig, transport).deliver_due()
    assert (report.sent, report.failed) == (1, 1)
    assert [m.to_address for m in transport.sent] == ["alice@example.com"]


def test_a_forgotten_password_request_with_smtp_down_succeeds_and_the_link_arrives_later(
    rig, engine
):
    identity_rig, _ = rig
    with identity_rig.uow.begin() as session:
        identity_rig.identity.signup(
            session, email="alice@example.com", password=PASSWORD, name=None, client=CLIENT
        )
    port = free_port()  # nothing listens here yet: the relay is down
    smtp = SmtpOutbox(
        host="127.0.0.1", port=port, sender=SENDER, security="none", timeout_seconds=5
    )
    calls = []

    class Watched:
        def send(self, mail, *, now):
            calls.append(mail.subject)
            smtp.send(mail, now=now)

    dispatcher = _dispatcher(rig, Watched())
    dispatcher.deliver_due()  # the verification mail: fails, the relay is down
    calls.clear()
    # The request itself never reaches the transport, so a dead relay cannot fail or slow it.
    with UnitOfWork(engine).begin() as session:
        identity_rig.identity.request_password_reset(
            session, email="alice@example.com", client=CLIENT
        )
    assert calls == []
    identity_rig.advance(minutes=1)
    assert dispatcher.deliver_due().retrying == 2
    inbox = Inbox()
    relay = Controller(inbox, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        identity_rig.advance(minutes=2)
        assert dispatcher.deliver_due().sent == 2
    finally:
        relay.stop()
    messages = [
        email.message_from_bytes(e.content, policy=email.policy.default) for e in inbox.envelopes
    ]
    [reset] = [m for m in messages if "Reset" in m["Subject"]]
    assert reset["To"] == "alice@example.com"
    assert TOKEN_LINE.search(reset.get_content())
    assert _rows(rig) == []


def test_a_forgotten_password_for_an_unknown_address_queues_nothing_and_is_audited(rig):
    identity_rig, _ = rig
    with identity_rig.uow.begin() as session:
        identity_rig.identity.request_password_reset(
            session, email="ghost@example.com", client=CLIENT
        )
    assert _rows(rig) == []
    event = identity_rig.audit.events[-1]
    assert (event.action, event.outcome, event.details) == (
        "identity.password_reset_requested",
        "failure",
        {"reason": "unknown_account"},
    )


def test_the_mail_deliver_job_sends_what_requests_queued(make_settings):
    # The cron path (`bastion jobs run mail.deliver`), with the real container and transport.
    # Imported here: the composition root pulls in every domain, the rest of this module none.
    from bastion.bootstrap import build, initialise
    from bastion.jobs import job_catalog

    settings = make_settings(identity={"argon2_memory_kib": 64, "argon2_time_cost": 1})
    initialise(settings)
    container = build(settings)
    try:
        with container.uow.begin() as session:
            container.identity.signup(
                session, email="carol@example.com", password=PASSWORD, name=None, client=CLIENT
            )
        assert read_mails(settings.mail_dir) == []  # queued, not sent by the request
        [job] = [j for j in job_catalog(container) if j.name == "mail.deliver"]
        job.run()
        [mail] = read_mails(settings.mail_dir)
        assert "Confirm" in mail["Subject"]
    finally:
        container.engine.dispose()
