"""Alerts and metrics against a real `bastion serve` over TLS: a damaged audit chain reaches a
loopback webhook receiver that verifies the signature and rejects a replay; the tenant's owner
reads the event, strangers cannot; the separate /metrics listener exposes the counters."""

import json
import re
import sqlite3
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from bastion.alerts.webhook_verify import SIGNATURE_HEADER, WebhookVerifier
from bastion.db import make_engine
from bastion.identity.models import TotpCredential
from bastion.identity.models import User as UserRow
from tests.support.audit import tamper
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, free_port, run_cli
from tests.support.webhooks import Receiver

PASSWORD = "correct horse battery staple"
SECRET = "e2e-webhook-secret-0123456789abcdef"
DELIVERY_WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver(WebhookVerifier(SECRET)).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, receiver):
    sinks = [
        {"kind": "webhook", "name": "soc", "url": receiver.url, "secret": SECRET},
        {"kind": "stdout", "name": "console", "min_severity": "info"},
    ]
    env = {
        **CHEAP_ARGON2_ENV,
        "BASTION_ALERTS__SINKS": json.dumps(sinks),
        "BASTION_ALERTS__POLL_SECONDS": "0.2",
        "BASTION_METRICS__ENABLED": "true",
        "BASTION_METRICS__PORT": str(free_port()),
    }
    process = ServerProcess(tmp_path_factory.mktemp("alerts") / "data", env=env)
    process.init()
    process.start()
    yield process
    process.stop()


def _metrics(server):
    port = server.env["BASTION_METRICS__PORT"]
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def _sample(text, name, **labels):
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return None


class User:
    def __init__(self, server, email):
        body = {"email": email, "password": PASSWORD}
        signed_up = server.client.post("/api/v1/auth/signup", json=body)
        assert signed_up.status_code == 201, signed_up.text
        self.id = signed_up.json()["id"]
        login = server.client.post("/api/v1/auth/login", json=body)
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['token']}"}


def _make_operator(server, user_id):
    now = datetime.now(UTC)
    engine = make_engine(f"sqlite:///{server.data_dir / 'bastion.db'}")
    with Session(engine) as session, session.begin():
        session.execute(update(UserRow).where(UserRow.id == user_id).values(is_operator=True))
        session.add(
            TotpCredential(
                user_id=user_id, secret_sealed=b"unused", created_at=now, confirmed_at=now
            )
        )
    engine.dispose()


def _wait_for(predicate):
    deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return None


def test_a_damaged_chain_alerts_a_verifying_receiver_and_its_owner_only(server, receiver):
    owner, member, stranger = (
        User(server, f"{name}-alerts@example.com") for name in ("owner", "member", "stranger")
    )
    created = server.client.post(
        "/api/v1/tenants", json={"name": "Alerted", "slug": "alerted"}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    tenant = created.json()["id"]
    added = server.client.post(
        "/api/v1/tenants/alerted/members",
        json={"user_id": member.id, "role": "member"},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text

    # A database administrator edits the tenant's audit chain; the scheduled check finds it.
    engine = make_engine(f"sqlite:///{server.data_dir / 'bastion.db'}")
    tamper(engine, f"UPDATE audit_events SET entry = entry || ' ' WHERE chain_id = '{tenant}'")  # noqa: S608
    engine.dispose()
    verify = run_cli("jobs", "run", "audit.verify", env=server.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Delivered by the server's worker, not by the job: the receiver verified the signature.
    accepted = _wait_for(
        lambda: [e for e in receiver.accepted if e["type"] == "audit.chain_damaged"]
    )
    assert accepted, server.output()[-3000:]
    [event] = accepted
    assert (event["severity"], event["tenant_id"]) == ("critical", tenant)
    captured = next(r for r in receiver.requests if r.status == 204)
    replay = httpx.post(
        receiver.url,
        content=captured.body,
        headers={SIGNATURE_HEADER: captured.headers[SIGNATURE_HEADER.lower()]},
    )
    assert replay.status_code == 409
    assert _wait_for(lambda: "bastion_security_event" in server.output())

    # The owner reads it; a member without the permission is refused; a stranger sees nothing.
    url = "/api/v1/tenants/alerted/security-events"
    mine = server.client.get(url, params={"severity": "high"}, headers=owner.headers)
    assert mine.status_code == 200, mine.text
    assert [item["id"] for item in mine.json()["items"]] == [event["id"]]
    assert server.client.get(url, headers=member.headers).status_code == 403
    hidden = server.client.get(url, headers=stranger.headers)
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    for params in (
        {"cursor": "forged"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"severity": "urgent"},
        {"type": "x' OR 1=1"},
    ):
        refused = server.client.get(url, params=params, headers=owner.headers)
        assert refused.status_code in (400, 422), (params, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    # The operator view is for operators with a second factor only.
    operator_url = "/api/v1/operator/security-events"
    server.client.cookies.clear()  # the logins above left a session cookie in the client
    assert server.client.get(operator_url).status_code == 401
    refused = server.client.get(operator_url, headers=owner.headers)
    assert refused.status_code == 403
    assert refused.json()["code"] == "access.operator_only"

    # An operator (flag and confirmed second factor set in the database: the enrolment flows
    # have their own tests) sees every event, and the read is audited on the system chain.
    operator = User(server, "operator-alerts@example.com")
    _make_operator(server, operator.id)
    everything = server.client.get(
        operator_url, params={"tenant_id": tenant}, headers=operator.headers
    )
    assert everything.status_code == 200, everything.text
    assert [item["id"] for item in everything.json()["items"]] == [event["id"]]
    with sqlite3.connect(server.data_dir / "bastion.db") as connection:
        audited = connection.execute(
            "SELECT count(*) FROM audit_events WHERE chain_id = 'system' "
            "AND action = 'security_event.operator_read'"
        ).fetchone()[0]
    assert audited == 1

    scraped = _metrics(server)
    assert _sample(scraped, "bastion_alerts_total", sink="webhook", outcome="sent") >= 1
    assert _sample(scraped, "bastion_alerts_total", sink="stdout", outcome="sent") >= 1
    assert _sample(scraped, "bastion_audit_chain_head_sequence", chain="tenants") > 0


def test_the_metrics_listener_exposes_every_counter_and_they_move(server):
    before = _metrics(server)
    healthz = {"route": "/healthz", "method": "GET", "status": "2xx"}
    start = _sample(before, "bastion_http_requests_total", **healthz) or 0
    for _ in range(3):
        assert server.client.get("/healthz").status_code == 200
    assert server.client.get("/no/such/page/12345").status_code == 404
    User(server, "metrics-login@example.com")
    wrong = {"email": "metrics-login@example.com", "password": "not the password at all"}
    assert server.client.post("/api/v1/auth/login", json=wrong).status_code == 401

    after = _metrics(server)
    assert _sample(after, "bastion_http_requests_total", **healthz) == start + 3
    assert _sample(after, "bastion_http_request_duration_seconds_count", route="/healthz") >= 3
    assert (
        _sample(after, "bastion_http_requests_total", route="unmatched", method="GET", status="4xx")
        >= 1
    )
    assert "/no/such/page" not in after  # raw paths never become labels
    assert _sample(after, "bastion_logins_total", outcome="ok") >= 1
    assert _sample(after, "bastion_logins_total", outcome="failed") >= 1
    for unlabelled in ("bastion_lockouts_total", "bastion_sources_blocked_total"):
        assert re.search(rf"^{unlabelled} \S+$", after, re.MULTILINE), unlabelled
    assert _sample(after, "bastion_rate_limited_total", endpoint_class="auth") is not None
    assert _sample(after, "bastion_audit_chain_head_sequence", chain="system") > 0
    for measure in ("superseded_versions", "active_encryption_fraction"):
        assert _sample(after, "bastion_key_rotation_pending", measure=measure) is not None
    port = server.env["BASTION_METRICS__PORT"]
    assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
