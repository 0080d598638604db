"""Two Bastion processes on distinct ports, sharing one PostgreSQL and one Redis (issue 10).

Nothing sits in front of them: a client alternates between the two addresses, as a load
balancer without session affinity would make it, and must see one consistent service:

- a record written through one process reads back, with the same ETag, through the other, and
  increments that alternate between them with ``If-Match`` lose no update (stale ETags: 412);
- revoking an API key or every session through one process refuses it on the other at once;
- rate-limit counters are shared: the auth limit counts attempts made through both processes.

Lockouts across two processes sharing Redis are tested in test_detection.py.
"""

from __future__ import annotations

import uuid

import pyotp
import pytest

from bastion.client import (
    AuthenticationFailed,
    BastionClient,
    PreconditionFailed,
    RateLimited,
)
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery staple"
AUTH_LIMIT = 12
INCREMENTS = 20


@pytest.fixture(scope="module")
def pair(postgres_databases, tmp_path_factory):
    url = postgres_databases.create()
    root = tmp_path_factory.mktemp("multi")
    env = {
        **CHEAP_ARGON2_ENV,
        "BASTION_DATABASE_URL": url,
        "BASTION_RATE_LIMITS__STORAGE_URL": "redis://127.0.0.1:6379/0",
        "BASTION_RATE_LIMITS__KEY_PREFIX": f"multi-{uuid.uuid4().hex}",
        "BASTION_RATE_LIMITS__AUTH": f"{AUTH_LIMIT}/minute",
    }
    first = ServerProcess(root / "a" / "data", env=env)
    first.init()
    second = ServerProcess(
        root / "b" / "data",
        env={**env, "BASTION_CRYPTO__KEY_FILE": str(first.data_dir / "master.key")},
    )
    second.init()
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def _client(server: ServerProcess, token: str | None = None) -> BastionClient:
    return BastionClient(server.base_url, verify=server.cert_file, token=token)


@pytest.fixture(scope="module")
def owner(pair):
    """An owner with a second factor (so it may create API keys), signed in on process A,
    and the same session used on process B; plus a tenant with a collection."""
    first, second = pair
    a = _client(first)
    a.signup("multi-owner@example.com", PASSWORD)
    a.login("multi-owner@example.com", PASSWORD)
    a.confirm_totp(pyotp.TOTP(a.begin_totp().secret).now())
    a.create_tenant("Multi", "multi")
    a.create_collection("multi", "counters")
    b = _client(second, token=a.token)
    yield a, b
    a.close()
    b.close()


def test_a_session_from_one_process_works_on_the_other(owner):
    a, b = owner
    assert a.me() == b.me()


def test_etags_agree_and_alternating_increments_lose_no_update(owner):
    a, b = owner
    created = a.create_record("multi", "counters", {"n": 0})
    assert b.record("multi", "counters", created.id).etag == created.etag

    stale = created.etag
    clients = (a, b)
    refused = 0
    for step in range(INCREMENTS):
        writer = clients[step % 2]
        while True:
            current = writer.record("multi", "counters", created.id)
            try:
                writer.replace_record(
                    "multi",
                    "counters",
                    created.id,
                    {"n": current.data["n"] + 1},
                    if_match=current.etag,
                )
                break
            except PreconditionFailed:  # only with a concurrent writer; none runs here
                continue
        # A writer on the other process still holding the first version is refused.
        with pytest.raises(PreconditionFailed):
            clients[(step + 1) % 2].replace_record(
                "multi", "counters", created.id, {"n": -1}, if_match=stale
            )
        refused += 1
    final = b.record("multi", "counters", created.id)
    assert final.data == {"n": INCREMENTS}
    assert a.record("multi", "counters", created.id).etag == final.etag
    assert refused == INCREMENTS


def test_an_api_key_revoked_through_one_process_is_refused_by_the_other_at_once(pair, owner):
    _, second = pair
    a, _ = owner
    created = a.create_api_key("multi", "robot", ["records:record:read", "records:collection:read"])
    with _client(second, token=created.secret) as robot_on_b:
        assert robot_on_b.records("multi", "counters") is not None
        a.revoke_api_key("multi", created.api_key.id)
        with pytest.raises(AuthenticationFailed):
            robot_on_b.records("multi", "counters")


def test_revoking_every_session_through_one_process_signs_out_on_the_other(pair):
    first, second = pair
    with _client(first) as a:
        a.signup("multi-leaver@example.com", PASSWORD)
        a.login("multi-leaver@example.com", PASSWORD)
        with _client(second, token=a.token) as b:
            assert b.me().email == "multi-leaver@example.com"
            a.revoke_all_sessions()
            with pytest.raises(AuthenticationFailed):
                b.me()


def test_the_auth_rate_limit_counts_attempts_made_through_both_processes(pair):
    first, second = pair
    answered = 0
    limited: RateLimited | None = None
    with _client(first) as a, _client(second) as b:
        for attempt in range(AUTH_LIMIT * 2):
            target = (a, b)[attempt % 2]
            try:
                target.login("nobody-multi@example.com", "not the password at all")
            except RateLimited as refused:
                limited = refused
                break
            except AuthenticationFailed:
                answered += 1
    assert limited is not None, "neither process applied the shared auth limit"
    assert limited.retry_after is not None
    # Shared counters stop the pair at AUTH_LIMIT calls in all, and this module's sign-ups and
    # logins through process A already spent some. Counted per process, A would stop after its
    # own remainder but B only after AUTH_LIMIT of its own: well over AUTH_LIMIT answers.
    assert answered < AUTH_LIMIT
