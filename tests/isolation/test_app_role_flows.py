"""Tenant A's own work still succeeds when requests run as the application role.

On PostgreSQL the world's requests run as a role that row-level security binds: every flow that
reads or writes tenant rows must bind its context (the principal, the tenant, a token digest)
or it fails closed. This walks the flows that cross those boundaries: invitation acceptance
(a token before a tenant), role changes and removal, the audit log, records, tenant settings,
security events, the access review, and an API key found by its digest. SQLite runs the same
calls (the application's scoping alone).
"""

from __future__ import annotations

import pyotp
import sqlalchemy as sa

from bastion.api.access import route_access
from bastion.bootstrap import mail_dispatcher
from tests.isolation.world import PASSWORD
from tests.support.identity import last_token


def _ok(world, method, path, principal_headers, **kwargs):
    response = world.client.request(method, path, headers=principal_headers, **kwargs)
    world.client.cookies.clear()
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response


def test_tenant_a_works_normally_as_the_application_role(world):
    a, owner = world.a, world.a.members["owner"].headers
    base = f"/api/v1/tenants/{a.slug}"
    email = f"carol-{world.backend}@example.com"
    body = {"email": email, "password": PASSWORD}
    carol = _ok(world, "POST", "/api/v1/auth/signup", {}, json=body).json()
    carol_headers = {
        "Authorization": "Bearer "
        + _ok(world, "POST", "/api/v1/auth/login", {}, json=body).json()["token"]
    }
    _ok(world, "POST", f"{base}/invitations", owner, json={"email": email, "role": "member"})
    mail_dispatcher(world.container, holder="isolation").deliver_due()
    token = last_token(world.container.settings.mail_dir, to=email, subject_contains="invited")
    # A token presented before its tenant is known (row-level security: the digest's row only).
    _ok(world, "POST", f"/api/v1/invitations/{token}/accept", carol_headers)
    mine = _ok(world, "GET", "/api/v1/tenants", carol_headers).json()["items"]
    assert [item["tenant"]["id"] if "tenant" in item else item["id"] for item in mine] == [a.id]
    _ok(world, "PATCH", f"{base}/members/{carol['id']}", owner, json={"role": "viewer"})
    _ok(world, "GET", f"{base}/members", carol_headers)
    _ok(world, "DELETE", f"{base}/members/{carol['id']}", owner)
    refused = world.client.request("GET", f"{base}/members", headers=carol_headers)
    assert refused.status_code == 404

    auditor = a.members["auditor"].headers
    events = _ok(world, "GET", f"{base}/audit", auditor).json()["items"]
    assert {"access.member_removed", "access.invitation_accepted"} <= {
        event["action"] for event in events
    }
    assert _ok(world, "GET", f"{base}/audit/export", owner).text.count("\n") > len(events)

    for path in ("", "/settings", "/security-events", "/access-review", "/roles"):
        _ok(world, "GET", f"{base}{path}", owner)


def test_records_of_tenant_a_are_served_as_the_application_role(world):
    a, member = world.a, world.a.members["member"].headers
    if "name" not in a.objects:
        return  # records routes are not mounted in this build
    base = f"/api/v1/tenants/{a.id}/collections/{a.objects['name'][0]}/records"
    created = _ok(world, "POST", base, member, json={"n": 1}).json()
    path = f"{base}/{created['id']}"
    assert _ok(world, "GET", path, member).json()["data"] == {"n": 1}
    _ok(world, "PUT", path, member, json={"n": 2})
    listed = _ok(world, "GET", base, member).json()["items"]
    assert created["id"] in {item["id"] for item in listed}
    _ok(world, "DELETE", path, member)


def test_an_api_key_of_tenant_a_works_as_the_application_role(world):
    """The key is found by its digest before its tenant is known (bastion.token_hash)."""
    a = world.a
    base = f"/api/v1/tenants/{a.id}"
    if "/api/v1/tenants/{tenant}/api-keys" not in {r.path for r in route_access(world.app)}:
        return  # API keys are not mounted in this build
    body = {"email": f"dave-{world.backend}@example.com", "password": PASSWORD}
    dave = _ok(world, "POST", "/api/v1/auth/signup", {}, json=body).json()
    token = _ok(world, "POST", "/api/v1/auth/login", {}, json=body).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    owner = a.members["owner"].headers
    _ok(world, "POST", f"{base}/members", owner, json={"user_id": dave["id"], "role": "admin"})
    secret = _ok(world, "POST", "/api/v1/me/totp", headers).json()["secret"]
    confirm = {"code": pyotp.TOTP(secret).now()}
    recovery = _ok(world, "POST", "/api/v1/me/totp/confirm", headers, json=confirm).json()
    _ok(
        world, "POST", "/api/v1/auth/step-up", headers, json={"code": recovery["recovery_codes"][0]}
    )
    created = _ok(
        world,
        "POST",
        f"{base}/api-keys",
        headers,
        json={"name": "ci", "permissions": ["access:member:read"]},
    ).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    members = _ok(world, "GET", f"{base}/members", key).json()["items"]
    assert dave["id"] in {member["user_id"] for member in members}
    other = world.client.request("GET", f"/api/v1/tenants/{world.b.id}/members", headers=key)
    assert other.status_code == 404
    _ok(world, "DELETE", f"{base}/api-keys/{created['id']}", headers)
    assert world.client.request("GET", f"{base}/members", headers=key).status_code == 401


def test_a_break_glass_grant_on_tenant_a_works_as_the_application_role(world):
    """An operator holds no membership: the tenant is found through the operator directory and
    the grant, then bound like a member's."""
    a = world.a
    if "/api/v1/tenants/{tenant}/break-glass" not in {r.path for r in route_access(world.app)}:
        return  # break-glass is not mounted in this build
    body = {"email": f"olga-{world.backend}@example.com", "password": PASSWORD}
    olga = _ok(world, "POST", "/api/v1/auth/signup", {}, json=body).json()
    with world.container.engine.begin() as connection:  # staff are made by the CLI, as owner
        connection.execute(
            sa.text("UPDATE users SET is_operator = true WHERE id = :id"), {"id": olga["id"]}
        )
    token = _ok(world, "POST", "/api/v1/auth/login", {}, json=body).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    secret = _ok(world, "POST", "/api/v1/me/totp", headers).json()["secret"]
    _ok(world, "POST", "/api/v1/me/totp/confirm", headers, json={"code": pyotp.TOTP(secret).now()})
    members = f"/api/v1/tenants/{a.slug}/members"
    assert world.client.request("GET", members, headers=headers).status_code == 404
    grant = _ok(
        world,
        "POST",
        "/api/v1/operator/break-glass",
        headers,
        json={"tenant": a.slug, "reason": "support ticket 42: data repair", "duration_minutes": 30},
    ).json()
    if grant["status"] == "pending":
        approve = f"/api/v1/tenants/{a.slug}/break-glass/{grant['id']}/approve"
        _ok(world, "POST", approve, a.members["owner"].headers)
    _ok(world, "GET", members, headers)
    other = world.client.request("GET", f"/api/v1/tenants/{world.b.slug}/members", headers=headers)
    assert other.status_code == 404
    if "/api/v1/operator/security-events" in {r.path for r in route_access(world.app)}:
        _ok(world, "GET", "/api/v1/operator/security-events", headers)  # operators read them all
