"""Tenant governance over real TLS against one real `bastion serve`: break-glass end to end,
tenant settings (IP allow-list, required second factor), custom roles and the access review."""

import csv
import io
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
REASON = "Incident 42: the customer asked us to check their import"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("policy") / "data", env=CHEAP_ARGON2_ENV)
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
    return signed_up.json()["id"], _bearer(login.json()["token"])


def _enrol_totp(server, headers):
    secret = server.client.post("/api/v1/me/totp", headers=headers).json()["secret"]
    confirmed = server.client.post(
        "/api/v1/me/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text


def _tenant(server, headers, slug):
    created = server.client.post(
        "/api/v1/tenants", json={"name": slug.title(), "slug": slug}, headers=headers
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _add(server, headers, slug, user_id, role):
    added = server.client.post(
        f"/api/v1/tenants/{slug}/members", json={"user_id": user_id, "role": role}, headers=headers
    )
    assert added.status_code == 201, added.text


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
    _enrol_totp(server, headers)
    return headers


def test_break_glass_end_to_end(server, operator):
    client: httpx.Client = server.client
    _, owner = _user(server, "bg-owner@example.com")
    _, stranger = _user(server, "bg-stranger@example.com")
    tenant_id = _tenant(server, owner, "bg-co")
    assert (
        client.post(
            "/api/v1/tenants/bg-co/collections", json={"name": "notes"}, headers=owner
        ).status_code
        == 201
    )
    record = client.post(
        "/api/v1/tenants/bg-co/collections/notes/records", json={"text": "hello"}, headers=owner
    ).json()
    record_path = f"/api/v1/tenants/bg-co/collections/notes/records/{record['id']}"

    # Operators run the service but cannot read tenant data.
    _problem(client.get(record_path, headers=operator), 404, "access.tenant_not_found")
    # Only operators may ask; a bad request is refused and changes nothing.
    body = {"tenant": "bg-co", "reason": REASON, "duration_minutes": 60}
    _problem(
        client.post("/api/v1/operator/break-glass", json=body, headers=stranger),
        403,
        "access.operator_only",
    )
    for bad in ({**body, "duration_minutes": 481}, {**body, "reason": "because"}):
        _problem(
            client.post("/api/v1/operator/break-glass", json=bad, headers=operator),
            422,
            "access.break_glass_invalid",
        )
    _problem(
        client.post(
            "/api/v1/operator/break-glass", json={**body, "tenant": "nope-co"}, headers=operator
        ),
        404,
        "access.tenant_not_found",
    )
    requested = client.post("/api/v1/operator/break-glass", json=body, headers=operator)
    assert requested.status_code == 201, requested.text
    grant = requested.json()
    assert (grant["status"], grant["tenant_id"], grant["expires_at"]) == (
        "pending",
        tenant_id,
        None,
    )
    _problem(client.get(record_path, headers=operator), 404, "access.tenant_not_found")

    # The tenant sees the request, and its owner approves it.
    listed = client.get("/api/v1/tenants/bg-co/break-glass", headers=owner).json()["items"]
    assert [(g["id"], g["reason"], g["status"]) for g in listed] == [
        (grant["id"], REASON, "pending")
    ]
    approved = client.post(
        f"/api/v1/tenants/bg-co/break-glass/{grant['id']}/approve", headers=owner
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    _problem(
        client.post(f"/api/v1/tenants/bg-co/break-glass/{grant['id']}/approve", headers=owner),
        409,
        "access.break_glass_not_pending",
    )

    # Read-only access while active: reads work, writes are refused.
    read = client.get(record_path, headers=operator)
    assert read.status_code == 200, read.text
    assert read.json()["data"] == {"text": "hello"}
    assert client.get(f"/api/v1/tenants/{tenant_id}/members", headers=operator).status_code == 200
    _problem(
        client.post(
            "/api/v1/tenants/bg-co/collections/notes/records", json={"x": 1}, headers=operator
        ),
        403,
        "access.permission_denied",
    )
    _problem(
        client.get("/api/v1/tenants/bg-co/settings", headers=stranger),
        404,
        "access.tenant_not_found",
    )

    # Every read under the grant is on the tenant's own audit chain, visible to the tenant.
    events = client.get(
        "/api/v1/tenants/bg-co/audit", params={"action": "break_glass."}, headers=owner
    ).json()["items"]
    reads = [e for e in events if e["action"] == "break_glass.read"]
    assert {e["details"]["route"] for e in reads} == {
        record_path,
        f"/api/v1/tenants/{tenant_id}/members",
    }
    assert all(e["target"] == grant["id"] for e in reads)
    assert {"break_glass.requested", "break_glass.approved"} <= {e["action"] for e in events}

    # Revoked: inert at once.
    revoked = client.post(f"/api/v1/tenants/bg-co/break-glass/{grant['id']}/revoke", headers=owner)
    assert revoked.json()["status"] == "revoked"
    _problem(client.get(record_path, headers=operator), 404, "access.tenant_not_found")
    mine = client.get("/api/v1/operator/break-glass", headers=operator).json()["items"]
    assert mine[0]["id"] == grant["id"]
    assert mine[0]["status"] == "revoked"


def test_ip_allow_list_and_required_second_factor(server):
    client: httpx.Client = server.client
    _, owner = _user(server, "policy-owner@example.com")
    member_id, member = _user(server, "policy-member@example.com")
    _tenant(server, owner, "policy-co")
    _add(server, owner, "policy-co", member_id, "member")
    settings = "/api/v1/tenants/policy-co/settings"
    assert client.get(settings, headers=member).json() == {
        "require_mfa": False,
        "ip_allowlist": [],
        "break_glass_requires_approval": True,
    }
    _problem(
        client.patch(settings, json={"require_mfa": True}, headers=member),
        403,
        "access.permission_denied",
    )
    _problem(
        client.patch(settings, json={"ip_allowlist": ["10.0.0.1/8"]}, headers=owner),
        422,
        "access.invalid_policy",
    )
    # The test client connects from 127.0.0.1: a list without it would lock the owner out.
    _problem(
        client.patch(settings, json={"ip_allowlist": ["10.0.0.0/8"]}, headers=owner),
        409,
        "access.policy_lockout",
    )
    changed = client.patch(settings, json={"ip_allowlist": ["127.0.0.0/8"]}, headers=owner)
    assert changed.status_code == 200, changed.text
    assert client.get("/api/v1/tenants/policy-co", headers=member).status_code == 200

    # Required second factor: the owner enrols first, then members without one are held off.
    _problem(
        client.patch(settings, json={"require_mfa": True}, headers=owner),
        409,
        "access.policy_lockout",
    )
    _enrol_totp(server, owner)
    assert client.patch(settings, json={"require_mfa": True}, headers=owner).status_code == 200
    _problem(
        client.get("/api/v1/tenants/policy-co/members", headers=member),
        403,
        "access.mfa_enrolment_required",
    )
    assert client.get("/api/v1/me", headers=member).status_code == 200  # may still enrol
    _enrol_totp(server, member)
    assert client.get("/api/v1/tenants/policy-co/members", headers=member).status_code == 200

    # A confirmed list without the caller's address takes effect on the very next request.
    confirmed = client.patch(
        settings, json={"ip_allowlist": ["10.0.0.0/8"], "confirm_lockout": True}, headers=owner
    )
    assert confirmed.status_code == 200, confirmed.text
    for headers in (owner, member):
        _problem(client.get(settings, headers=headers), 403, "access.ip_not_allowed")


def test_custom_roles_and_the_access_review(server):
    client: httpx.Client = server.client
    _, owner = _user(server, "roles-owner@example.com")
    analyst_id, analyst = _user(server, "roles-analyst@example.com")
    _, other_owner = _user(server, "roles-other@example.com")
    tenant_id = _tenant(server, owner, "roles-co")
    other_id = _tenant(server, other_owner, "other-roles-co")
    _add(server, owner, "roles-co", analyst_id, "member")
    roles = "/api/v1/tenants/roles-co/roles"
    _problem(
        client.post(
            roles, json={"name": "analyst", "permissions": ["records:record:fly"]}, headers=owner
        ),
        422,
        "access.unknown_permission",
    )
    _problem(
        client.post(
            roles, json={"name": "boss", "permissions": ["access:owner:manage"]}, headers=owner
        ),
        422,
        "access.role_not_grantable",
    )
    created = client.post(
        roles,
        json={"name": "analyst", "permissions": ["access:tenant:read", "access:review:read"]},
        headers=owner,
    )
    assert created.status_code == 201, created.text
    assert [r["name"] for r in client.get(roles, headers=owner).json()["items"]] == ["analyst"]
    assign = f"/api/v1/tenants/roles-co/members/{analyst_id}/role"
    _problem(client.put(assign, json={"role": "wizard"}, headers=owner), 422, "access.unknown_role")
    # Another tenant's id anywhere in the path is a 404.
    _problem(
        client.put(
            f"/api/v1/tenants/{other_id}/members/{analyst_id}/role",
            json={"role": "analyst"},
            headers=owner,
        ),
        404,
        "access.tenant_not_found",
    )
    assigned = client.put(assign, json={"role": "analyst"}, headers=owner)
    assert assigned.json()["custom_role"] == "analyst"
    _problem(
        client.get("/api/v1/tenants/roles-co/members", headers=analyst),
        403,
        "access.permission_denied",
    )
    _problem(client.delete(f"{roles}/analyst", headers=owner), 409, "access.role_in_use")

    # The analyst's custom role includes the access review: JSON by default, CSV on request.
    review = client.get(f"/api/v1/tenants/{tenant_id}/access-review", headers=analyst)
    assert review.status_code == 200, review.text
    members = {m["email"]: m for m in review.json()["members"]}
    assert members["roles-analyst@example.com"]["custom_role"] == "analyst"
    assert members["roles-owner@example.com"]["role"] == "owner"
    assert review.json()["api_keys"] == [] or isinstance(review.json()["api_keys"], list)
    as_csv = client.get(
        "/api/v1/tenants/roles-co/access-review", headers={**analyst, "Accept": "text/csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {row["email"] for row in rows if row["kind"] == "member"} == set(members)

    # The same review from the server's console.
    cli = run_cli("access", "review", "--tenant", "roles-co", "--format", "json", env=server.env)
    assert cli.returncode == 0, cli.stderr
    assert {m["email"] for m in json.loads(cli.stdout)["members"]} == set(members)
    events = client.get(
        "/api/v1/tenants/roles-co/audit", params={"action": "access_review.read"}, headers=owner
    ).json()["items"]
    assert [e["details"]["format"] for e in events] == ["json", "csv", "json"]

    # The last owner's account cannot be disabled until someone else owns the tenant.
    refused = run_cli("users", "disable", "roles-owner@example.com", env=server.env)
    assert refused.returncode == 1
    assert "last owner of: roles-co" in refused.stderr
    assert client.get("/api/v1/tenants/roles-co", headers=owner).status_code == 200
