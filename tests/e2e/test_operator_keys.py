"""Operator key management over real TLS against one real `bastion serve`: status, tenant data-key
rotation and re-encryption; refused to everyone else; no key material and no tenant data in any
answer; audited on the system chain (and the rotation on the tenant's chain too)."""

import json
import re

import httpx
import pyotp
import pytest

from tests.support.http import bearer as _bearer
from tests.support.http import problem as _problem
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, run_cli

PASSWORD = "correct horse battery staple"
SECRET_TEXT = "the launch code is 0000"  # record content no operator answer may contain
KEYS = "/api/v1/operator/keys"

# The first test also starts the server and creates the operator and a tenant.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("keys") / "data", env=CHEAP_ARGON2_ENV)
    process.init()
    process.start()
    yield process
    process.stop()


def _user(server, email):
    signed_up = server.client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD}
    )
    assert signed_up.status_code == 201, signed_up.text
    login = server.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return _bearer(login.json()["token"])


@pytest.fixture(scope="module")
def operator(server):
    """The first operator with a confirmed TOTP factor: their session headers."""
    (link,) = re.findall(r"/bootstrap\?token=([A-Za-z0-9_-]+)", server.output())
    email = "root@example.com"
    created = server.client.post(
        "/api/v1/bootstrap", json={"token": link, "email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    login = server.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    headers = _bearer(login.json()["token"])
    secret = server.client.post("/api/v1/me/totp", headers=headers).json()["secret"]
    confirmed = server.client.post(
        "/api/v1/me/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return headers


@pytest.fixture(scope="module")
def tenant(server):
    """A tenant with one encrypted record, and its owner's headers."""
    owner = _user(server, "keys-owner@example.com")
    created = server.client.post(
        "/api/v1/tenants", json={"name": "Keys Co", "slug": "keys-co"}, headers=owner
    )
    assert created.status_code == 201, created.text
    base = "/api/v1/tenants/keys-co/collections"
    assert server.client.post(base, json={"name": "notes"}, headers=owner).status_code == 201
    record = server.client.post(f"{base}/notes/records", json={"text": SECRET_TEXT}, headers=owner)
    assert record.status_code == 201, record.text
    return {
        "id": created.json()["id"],
        "owner": owner,
        "record": f"{base}/notes/records/{record.json()['id']}",
    }


def _tenant_status(server, operator, tenant_id):
    page = server.client.get(f"{KEYS}/tenants", params={"limit": 200}, headers=operator)
    assert page.status_code == 200, page.text
    return next(item for item in page.json()["items"] if item["tenant"] == tenant_id)


def test_everyone_but_an_operator_is_refused(server, tenant):
    owner = tenant["owner"]
    body = {"tenant": tenant["id"]}
    # A client of its own: the shared one keeps the last login's session cookie.
    anonymous_client = httpx.Client(
        base_url=server.base_url, verify=server.ssl_context(), timeout=10
    )
    for method, path, payload in (
        ("GET", KEYS, None),
        ("GET", f"{KEYS}/tenants", None),
        ("POST", f"{KEYS}/rotate", body),
        ("POST", f"{KEYS}/reencrypt", body),
    ):
        anonymous = anonymous_client.request(method, path, json=payload)
        _problem(anonymous, 401, "identity.not_authenticated")
        as_owner = server.client.request(method, path, json=payload, headers=owner)
        _problem(as_owner, 403, "access.operator_only")
    anonymous_client.close()
    # The tenant's owner did not rotate anything by trying.
    assert server.client.get(tenant["record"], headers=owner).json()["data"]["text"] == SECRET_TEXT


def test_status_rotate_and_reencrypt_without_key_material_or_tenant_data(server, operator, tenant):
    client = server.client
    status = client.get(KEYS, headers=operator)
    assert status.status_code == 200, status.text
    overview = status.json()
    assert {key["name"] for key in overview["system_keys"]} == {"data", "mac", "signing"}
    assert overview["master_key_rotation_unfinished"] is False
    assert overview["tenants_with_keys"] >= 1
    assert overview["encryption_limit"] == 2**32
    before = _tenant_status(server, operator, tenant["id"])
    assert before["active_version"] == 1
    assert before["pending_versions"] == []

    rotated = client.post(f"{KEYS}/rotate", json={"tenant": tenant["id"]}, headers=operator)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["version"]["version"] == 2
    after = _tenant_status(server, operator, tenant["id"])
    assert (after["active_version"], after["pending_versions"]) == (2, [1])

    reencrypted = client.post(f"{KEYS}/reencrypt", json={"tenant": tenant["id"]}, headers=operator)
    assert reencrypted.status_code == 200, reencrypted.text
    targets = reencrypted.json()["targets"]
    assert sum(t["rows_reencrypted"] for t in targets) >= 1
    assert all(t["finished"] and t["to_version"] == 2 for t in targets)
    done = _tenant_status(server, operator, tenant["id"])
    assert all(job["finished"] for job in done["reencryption"])

    # The data is intact for its owner, and nothing an operator got back holds it or a key.
    assert client.get(tenant["record"], headers=tenant["owner"]).json()["data"]["text"] == (
        SECRET_TEXT
    )
    for answer in (status, rotated, reencrypted):
        text = answer.text
        assert SECRET_TEXT not in text
        assert "wrapped" not in text
        assert "public_key" not in text
    # Rotating keys grants no access to the tenant's records.
    _problem(client.get(tenant["record"], headers=operator), 404, "access.tenant_not_found")


def test_bad_bodies_and_unknown_tenants_change_nothing(server, operator, tenant):
    client = server.client
    before = _tenant_status(server, operator, tenant["id"])
    for body in (
        {},
        {"tenant": ""},
        {"tenant": "../../etc"},
        {"tenant": "x" * 37},
        {"tenant": tenant["id"], "version": 9},
        {"tenant": 7},
    ):
        _problem(
            client.post(f"{KEYS}/rotate", json=body, headers=operator),
            422,
            "http.validation_failed",
        )
    _problem(
        client.post(f"{KEYS}/rotate", json={"tenant": "no-such-tenant"}, headers=operator),
        404,
        "crypto.key_not_provisioned",
    )
    _problem(
        client.get(f"{KEYS}/tenants", params={"cursor": "%%%"}, headers=operator),
        400,
        "crypto.invalid_cursor",
    )
    assert _tenant_status(server, operator, tenant["id"]) == before


def test_tenant_pages_follow_the_cursor(server, operator, tenant):
    _user_headers = _user(server, "keys-second@example.com")
    created = server.client.post(
        "/api/v1/tenants", json={"name": "Second", "slug": "keys-second"}, headers=_user_headers
    )
    assert created.status_code == 201, created.text
    seen, cursor = [], None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = server.client.get(f"{KEYS}/tenants", params=params, headers=operator).json()
        seen.extend(item["tenant"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert {tenant["id"], created.json()["id"]} <= set(seen)


def test_system_key_rotation_and_reencryption(server, operator, tenant):
    client = server.client
    for path in (f"{KEYS}/system/rotate", f"{KEYS}/system/reencrypt"):
        _problem(client.post(path, headers=tenant["owner"]), 403, "access.operator_only")
    data_versions = [
        key["version"]
        for key in client.get(KEYS, headers=operator).json()["system_keys"]
        if key["name"] == "data"
    ]

    rotated = client.post(f"{KEYS}/system/rotate", headers=operator)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["version"]["version"]
    assert new == max(data_versions) + 1
    assert (
        max(data_versions) in client.get(KEYS, headers=operator).json()["pending_system_versions"]
    )

    reencrypted = client.post(f"{KEYS}/system/reencrypt", headers=operator)
    assert reencrypted.status_code == 200, reencrypted.text
    targets = {t["target"]: t for t in reencrypted.json()["targets"]}
    assert {"system:users.email_sealed", "system:totp_credentials.secret_sealed"} <= set(targets)
    # At least the operator's and the owner's addresses, and the operator's TOTP secret.
    assert targets["system:users.email_sealed"]["rows_reencrypted"] >= 2
    assert targets["system:totp_credentials.secret_sealed"]["rows_reencrypted"] >= 1
    assert all(t["finished"] and t["to_version"] == new for t in targets.values())
    status = client.get(KEYS, headers=operator).json()
    assert all(job["finished"] for job in status["system_reencryption"])

    # The re-sealed addresses open, and no answer carried one or any key material.
    me = client.get("/api/v1/me", headers=tenant["owner"])
    assert me.json()["email"] == "keys-owner@example.com"
    for answer in (rotated, reencrypted):
        assert "@example.com" not in answer.text
        assert "wrapped" not in answer.text


def test_operator_key_actions_are_audited_and_the_chains_verify(server, operator, tenant):
    exported = run_cli("audit", "export", "--tenant", "system", env=server.env)
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    actions = {e["action"]: e for e in events if e.get("type") == "event"}
    for action in ("operator.keys_viewed", "operator.key_status_listed", "operator.key_rotated"):
        assert action in actions
        assert actions[action]["actor"] is not None
    assert actions["operator.key_rotated"]["details"] == {"tenant": tenant["id"], "version": 2}
    assert "operator.keys_reencrypted" in actions
    assert "operator.system_key_rotated" in actions
    assert "operator.system_keys_reencrypted" in actions
    on_tenant = run_cli("audit", "export", "--tenant", tenant["id"], env=server.env)
    tenant_lines = [json.loads(line) for line in on_tenant.stdout.splitlines() if line.strip()]
    tenant_actions = [line["action"] for line in tenant_lines if line.get("type") == "event"]
    assert "key.rotated" in tenant_actions
    verify = run_cli("audit", "verify", env=server.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
