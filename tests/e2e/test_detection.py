"""Detection end to end: two real servers over TLS on one PostgreSQL, sharing Redis counters,
sending mail to a real SMTP server (aiosmtpd).

- 1,000 wrong passwords against one account: at most N verified per lock, the lock expires, the
  right password then works; the same attack spread over the two processes: the same.
- Credential stuffing over many accounts from one address: the address is blocked (429).
- A new device: the e-mail arrives over SMTP, and its "this wasn't me" link ends every session
  and blocks sign-in until a password reset.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from tests.support import server as server_support
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, free_port

# Two servers start (on a loaded machine, well over a minute) before the first test runs.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(600)]

N = 10
LOCKOUT_SECONDS = 3
PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "another long passphrase 99"
WRONG = "not the password at all"
TOKEN = re.compile(r"works once\):\r?\n([A-Za-z0-9_-]{20,})")
MAIL_WAIT_SECONDS = 15
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"


class Inbox:
    def __init__(self):
        self.messages = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ARG002 - aiosmtpd API
        self.messages.append(
            email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        )
        return "250 OK"

    def token(self, *, to: str, subject: str) -> str:
        """The token of the newest message to ``to`` about ``subject``, waiting for delivery."""
        deadline = time.monotonic() + MAIL_WAIT_SECONDS
        while time.monotonic() < deadline:
            for message in reversed(self.messages):
                if to in str(message["To"]) and subject in str(message["Subject"]):
                    found = TOKEN.search(message.get_content())
                    if found:
                        return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no mail to {to} about {subject!r}")

    def count(self, *, to: str, subject: str) -> int:
        return sum(1 for m in self.messages if to in str(m["To"]) and subject in str(m["Subject"]))


@pytest.fixture(scope="module")
def relay():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture(scope="module")
def servers(postgres_databases, tmp_path_factory, relay):
    # Two servers start on a machine shared by many test runs: allow them more than the default.
    default_timeout = server_support.STARTUP_TIMEOUT_SECONDS
    server_support.STARTUP_TIMEOUT_SECONDS = 90
    url = postgres_databases.create()
    root = tmp_path_factory.mktemp("detection")
    env = {
        **CHEAP_ARGON2_ENV,
        "BASTION_DATABASE_URL": url,
        "BASTION_MAIL__TRANSPORT": "smtp",
        "BASTION_MAIL__SMTP_HOST": "127.0.0.1",
        "BASTION_MAIL__SMTP_PORT": str(relay.port),
        "BASTION_MAIL__SMTP_SECURITY": "none",
        "BASTION_RATE_LIMITS__STORAGE_URL": "redis://127.0.0.1:6379/0",
        "BASTION_RATE_LIMITS__KEY_PREFIX": f"e2e-{uuid.uuid4().hex}",
        # The flood must reach the login guard: the per-address auth limit is tested elsewhere.
        "BASTION_RATE_LIMITS__AUTH": "100000/minute",
        "BASTION_DETECTION__ACCOUNT_FAILURE_LIMIT": str(N),
        "BASTION_DETECTION__LOCKOUT_SECONDS": str(LOCKOUT_SECONDS),
        "BASTION_DETECTION__SOURCE_FAILURE_LIMIT": "100000",
        "BASTION_DETECTION__STUFFING_ACCOUNT_LIMIT": "10",
        "BASTION_DETECTION__DELAY_BASE_MS": "1",
        "BASTION_DETECTION__DELAY_MAX_MS": "4",
        # The tests speak for several client addresses through X-Forwarded-For.
        "BASTION_HTTP__TRUSTED_PROXIES": '["127.0.0.1/32"]',
    }
    first = ServerProcess(root / "a" / "data", env=env)
    first.init()
    second = ServerProcess(
        root / "b" / "data",
        env={**env, "BASTION_CRYPTO__KEY_FILE": str(first.data_dir / "master.key")},
    )
    second.init()
    database = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        first.start()
        second.start()
        yield first, second, database
    finally:
        second.stop()
        first.stop()
        database.dispose()
        server_support.STARTUP_TIMEOUT_SECONDS = default_timeout


def _signup(server, address):
    answer = server.client.post(
        "/api/v1/auth/signup", json={"email": address, "password": PASSWORD}
    )
    assert answer.status_code == 201, answer.text


def _login(server, address, password, *, user_agent="pytest", source=None):
    headers = {"user-agent": user_agent}
    if source:
        headers["x-forwarded-for"] = source
    return server.client.post(
        "/api/v1/auth/login", json={"email": address, "password": password}, headers=headers
    )


def _flood(targets, address, attempts, user_agent):
    """``attempts`` wrong passwords from 8 threads, spread round-robin over ``targets``."""

    def one(n):
        return _login(targets[n % len(targets)], address, WRONG, user_agent=user_agent)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [answer.status_code for answer in pool.map(one, range(attempts))]


def _verified_failures(database, user_agent):
    """Wrong passwords that were actually checked (not refused by a lock), from the audit log."""
    with database.connect() as connection:
        return connection.execute(
            text(
                "SELECT count(*) FROM audit_events WHERE action = 'identity.login' "
                "AND outcome = 'failure' AND user_agent = :agent "
                "AND details LIKE '%wrong_password%'"
            ),
            {"agent": user_agent},
        ).scalar_one()


def _wait_until_signed_in(server, address):
    deadline = time.monotonic() + LOCKOUT_SECONDS + 10
    while time.monotonic() < deadline:
        answer = _login(server, address, PASSWORD)
        if answer.status_code == 200:
            return answer
        assert answer.status_code == 401
        time.sleep(0.25)
    raise AssertionError("the lock did not expire")


def _check_attack(servers, relay, targets, address, agent):
    statuses = _flood(targets, address, 1000, agent)
    assert statuses == [401] * 1000  # one answer for every refusal: no lockout oracle
    locks = relay.count(to=address, subject="locked")
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while locks == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        locks = relay.count(to=address, subject="locked")
    assert locks >= 1
    verified = _verified_failures(servers[2], agent)
    # Locked after N: never more than N passwords checked per lock (plus the window in flight
    # when the flood stopped, which is below N).
    assert N <= verified <= N * (locks + 1)
    assert _wait_until_signed_in(targets[-1], address).json()["token"]


def test_a_thousand_wrong_passwords_lock_the_account_until_the_lock_expires(servers, relay):
    first, _, _ = servers
    _signup(first, "flood-one@example.com")
    _check_attack(servers, relay, [first], "flood-one@example.com", "flood-one")


def test_the_same_attack_over_two_processes_sharing_redis_locks_the_same(servers, relay):
    first, second, _ = servers
    _signup(second, "flood-two@example.com")
    _check_attack(servers, relay, [first, second], "flood-two@example.com", "flood-two")


def test_credential_stuffing_from_one_address_blocks_it(servers):
    first, second, _ = servers
    stuffer = "198.51.100.77"
    for n in range(10):
        answer = _login(first, f"stuffed-{n}@example.com", WRONG, source=stuffer)
        assert answer.status_code == 401
    blocked = _login(second, "stuffed-99@example.com", WRONG, source=stuffer)
    assert blocked.status_code == 429
    assert blocked.headers["content-type"] == "application/problem+json"
    assert blocked.json()["code"] == "detection.source_blocked"
    assert int(blocked.headers["retry-after"]) > 0
    assert (
        _login(second, "stuffed-99@example.com", WRONG, source="198.51.100.78").status_code == 401
    )


def test_a_new_device_mail_arrives_over_smtp_and_its_link_revokes_everything(servers, relay):
    first, second, database = servers
    address = "traveller@example.com"
    _signup(first, address)
    mine = _login(first, address, PASSWORD, user_agent=FIREFOX, source="203.0.113.5")
    assert mine.status_code == 200
    theirs = _login(second, address, PASSWORD, user_agent=IPHONE, source="192.0.2.44")
    assert theirs.status_code == 200
    token = relay.token(to=address, subject="New sign-in")
    assert relay.count(to=address, subject="New sign-in") == 1

    reported = second.client.post("/api/v1/auth/report-login", json={"token": token})
    assert reported.status_code == 200, reported.text
    assert reported.json()["sessions_revoked"] == 2
    for session in (mine, theirs):
        for server in (first, second):
            me = server.client.get(
                "/api/v1/me", headers={"authorization": f"Bearer {session.json()['token']}"}
            )
            assert me.status_code == 401
    # Sign-in stays refused, even with the right password, until the password is reset.
    assert _login(first, address, PASSWORD, user_agent=FIREFOX).status_code == 401
    again = first.client.post("/api/v1/auth/report-login", json={"token": token})
    assert again.status_code == 400
    with database.connect() as connection:
        severity = connection.execute(
            text("SELECT severity FROM security_events WHERE type = 'login.reported'")
        ).scalar_one()
    assert severity >= 40

    reset = relay.token(to=address, subject="Reset")
    answer = first.client.post(
        "/api/v1/auth/password/reset", json={"token": reset, "password": NEW_PASSWORD}
    )
    assert answer.status_code == 204, answer.text
    assert _login(second, address, NEW_PASSWORD, user_agent=FIREFOX).status_code == 200


def test_bad_link_requests_get_a_clear_4xx_and_change_nothing(servers):
    first, _, _ = servers
    for path in ("/api/v1/auth/unlock", "/api/v1/auth/report-login"):
        for body in ({"token": "short"}, {"token": "x" * 5000}, {"token": "y" * 43, "more": 1}, {}):
            answer = first.client.post(path, json=body)
            assert answer.status_code == 422
            assert answer.headers["content-type"] == "application/problem+json"
        unknown = first.client.post(path, json={"token": "z" * 43})
        assert unknown.status_code == 400
        assert unknown.json()["code"] == "detection.link_invalid"
        cross_site = first.client.post(
            path, json={"token": "z" * 43}, headers={"sec-fetch-site": "cross-site"}
        )
        assert cross_site.status_code == 403
