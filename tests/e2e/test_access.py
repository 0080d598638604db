"""Tenants, roles and the tenant audit log over real TLS against real `bastion serve` processes."""

import json

import httpx
import pytest

from tests.support.http import problem as _problem
from tests.support.identity import CHEAP_ARGON2_ENV, last_token
from tests.support.server import ServerProcess

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("access") / "data", env=CHEAP_ARGON2_ENV)
    process.init()
    process.start()
    yield process
    process.stop()


class User:
    def __init__(self, server, email):
        signed_up = server.client.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        self.id = signed_up.json()["id"]
        self.email = email
        self.login(server)

    def login(self, server):
        response = server.client.post(
            "/api/v1/auth/login", json={"email": self.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        return self

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}


def _create(server, owner, slug, name="Acme Corp"):
    response = server.client.post(
        "/api/v1/tenants", json={"name": name, "slug": slug}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def _add(server, owner, tenant, user, role):
    response = server.client.post(
        f"/api/v1/tenants/{tenant}/members",
        json={"user_id": user.id, "role": role},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text


def test_create_a_tenant_then_list_mine(server):
    owner = User(server, "owner-create@example.com")
    created = _create(server, owner, "create-co")
    assert set(created) == {"id", "slug", "name"}
    assert created["slug"] == "create-co"
    mine = server.client.get("/api/v1/tenants", headers=owner.headers)
    assert mine.status_code == 200
    assert {**created, "role": "owner"} in mine.json()["items"]
    for ref in (created["id"], "create-co"):
        one = server.client.get(f"/api/v1/tenants/{ref}", headers=owner.headers)
        assert one.json() == {**created, "role": "owner"}
    members = server.client.get("/api/v1/tenants/create-co/members", headers=owner.headers)
    assert [(m["user_id"], m["role"]) for m in members.json()["items"]] == [(owner.id, "owner")]
    _problem(
        server.client.post(
            "/api/v1/tenants", json={"name": "x", "slug": "create-co"}, headers=owner.headers
        ),
        409,
        "access.slug_taken",
    )
    _problem(
        server.client.post(
            "/api/v1/tenants", json={"name": "x", "slug": "Bad Slug"}, headers=owner.headers
        ),
        422,
        "access.invalid_slug",
    )
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context()) as anonymous:
        _problem(anonymous.get("/api/v1/tenants"), 401)


def test_another_user_gets_404_for_a_tenant_by_id_or_slug(server):
    owner = User(server, "owner-404@example.com")
    stranger = User(server, "stranger-404@example.com")
    tenant = _create(server, owner, "secret-co")
    for ref in (tenant["id"], "secret-co"):
        for method, path in (
            ("GET", f"/api/v1/tenants/{ref}"),
            ("GET", f"/api/v1/tenants/{ref}/members"),
            ("DELETE", f"/api/v1/tenants/{ref}/members/{owner.id}"),
            ("GET", f"/api/v1/tenants/{ref}/audit"),
        ):
            response = server.client.request(method, path, headers=stranger.headers)
            _problem(response, 404, "access.tenant_not_found")
    missing = server.client.get("/api/v1/tenants/no-such-co", headers=stranger.headers)
    assert missing.json()["detail"] == response.json()["detail"]
    assert server.client.get("/api/v1/tenants", headers=stranger.headers).json()["items"] == []


def test_a_viewer_gets_403_on_member_removal_and_nothing_changes(server):
    owner = User(server, "owner-403@example.com")
    viewer = User(server, "viewer-403@example.com")
    tenant = _create(server, owner, "viewer-co")
    _add(server, owner, "viewer-co", viewer, "viewer")
    assert server.client.get("/api/v1/tenants/viewer-co", headers=viewer.headers).status_code == 200
    refused = server.client.delete(
        f"/api/v1/tenants/viewer-co/members/{owner.id}", headers=viewer.headers
    )
    body = _problem(refused, 403, "access.permission_denied")
    assert body["permission"] == "access:member:remove"
    members = server.client.get("/api/v1/tenants/viewer-co/members", headers=owner.headers)
    assert len(members.json()["items"]) == 2
    audit = server.client.get(
        f"/api/v1/tenants/{tenant['id']}/audit",
        params={"action": "access.permission_denied"},
        headers=owner.headers,
    )
    (denied,) = audit.json()["items"]
    assert denied["outcome"] == "denied"


def test_the_last_owner_cannot_be_removed_or_downgraded(server):
    owner = User(server, "owner-last@example.com")
    second = User(server, "second-last@example.com")
    _create(server, owner, "last-co")
    path = f"/api/v1/tenants/last-co/members/{owner.id}"
    _problem(
        server.client.patch(path, json={"role": "admin"}, headers=owner.headers),
        409,
        "access.last_owner",
    )
    _problem(server.client.delete(path, headers=owner.headers), 409, "access.last_owner")
    _problem(server.client.patch(path, json={"role": "superuser"}, headers=owner.headers), 422)
    _add(server, owner, "last-co", second, "owner")
    downgraded = server.client.patch(path, json={"role": "admin"}, headers=owner.headers)
    assert downgraded.status_code == 200, downgraded.text
    assert downgraded.json()["role"] == "admin"


def test_audit_query_and_export_for_owners_and_auditors_only(server):
    owner = User(server, "owner-audit@example.com")
    member = User(server, "member-audit@example.com")
    auditor = User(server, "auditor-audit@example.com")
    stranger = User(server, "stranger-audit@example.com")
    tenant = _create(server, owner, "audit-co")
    _add(server, owner, "audit-co", member, "member")
    _add(server, owner, "audit-co", auditor, "auditor")

    everything = server.client.get("/api/v1/tenants/audit-co/audit", headers=owner.headers)
    assert everything.status_code == 200, everything.text
    actions = [item["action"] for item in everything.json()["items"]]
    assert actions[:3] == ["access.member_added", "access.member_added", "access.tenant_created"]
    assert actions[-1] == "key.created"

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = server.client.get(
            "/api/v1/tenants/audit-co/audit", params=params, headers=auditor.headers
        ).json()
        pages.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["seq"] for item in pages] == [item["seq"] for item in everything.json()["items"]]

    by_actor = server.client.get(
        "/api/v1/tenants/audit-co/audit",
        params={"actor": owner.id, "action": "access.", "target": member.id},
        headers=owner.headers,
    ).json()["items"]
    assert [item["action"] for item in by_actor] == ["access.member_added"]
    _problem(
        server.client.get(
            "/api/v1/tenants/audit-co/audit", params={"cursor": "bogus"}, headers=owner.headers
        ),
        400,
    )

    with server.client.stream(
        "GET", f"/api/v1/tenants/{tenant['id']}/audit/export", headers=auditor.headers
    ) as export:
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("application/jsonl")
        lines = [json.loads(line) for line in export.iter_lines() if line]
    assert lines[0]["type"] == "export"
    assert lines[0]["chain"] == tenant["id"]
    events = [line for line in lines if line["type"] == "event"]
    assert events[-1]["action"] == "access.audit_exported"
    assert lines[0]["head_seq"] == events[-1]["seq"]

    for path in ("/api/v1/tenants/audit-co/audit", "/api/v1/tenants/audit-co/audit/export"):
        _problem(server.client.get(path, headers=member.headers), 403, "access.permission_denied")
        _problem(server.client.get(path, headers=stranger.headers), 404, "access.tenant_not_found")
    # The auditor reads the audit log and nothing else.
    _problem(server.client.get("/api/v1/tenants/audit-co/members", headers=auditor.headers), 403)


@pytest.fixture
def two_servers(postgres_databases, tmp_path):
    """Two `bastion serve` processes on one PostgreSQL database, sharing the master key."""
    url = postgres_databases.create()
    first = ServerProcess(
        tmp_path / "a" / "data", env={**CHEAP_ARGON2_ENV, "BASTION_DATABASE_URL": url}
    )
    first.init()
    second = ServerProcess(
        tmp_path / "b" / "data",
        env={
            **CHEAP_ARGON2_ENV,
            "BASTION_DATABASE_URL": url,
            "BASTION_CRYPTO__KEY_FILE": str(first.data_dir / "master.key"),
        },
    )
    # init on a database that is already initialised: nothing is recreated, and the key is
    # checked against the keyring, so the second process provably shares the first's.
    second.init()
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_a_removed_member_is_refused_on_the_other_process_at_once(two_servers):
    a, b = two_servers
    owner = User(a, "owner-two@example.com")
    member = User(a, "member-two@example.com")
    tenant = _create(b, owner, "two-co")
    _add(a, owner, "two-co", member, "admin")
    members_path = f"/api/v1/tenants/{tenant['id']}/members"
    assert a.client.get(members_path, headers=member.headers).status_code == 200

    downgraded = b.client.patch(
        f"{members_path}/{member.id}", json={"role": "viewer"}, headers=owner.headers
    )
    assert downgraded.status_code == 200
    refused = a.client.delete(f"{members_path}/{owner.id}", headers=member.headers)
    _problem(refused, 403, "access.permission_denied")

    removed = b.client.delete(f"{members_path}/{member.id}", headers=owner.headers)
    assert removed.status_code == 204
    _problem(a.client.get(members_path, headers=member.headers), 404, "access.tenant_not_found")
    # The session itself lives on for the member's own account; only the tenant is gone.
    assert a.client.get("/api/v1/me", headers=member.headers).status_code == 200
    assert a.client.get("/api/v1/tenants", headers=member.headers).json()["items"] == []


def test_an_invitation_by_e_mail_is_accepted_once_by_the_invited_account(server):
    owner = User(server, "owner-invite@example.com")
    _create(server, owner, "invite-co", name="Invite Co")
    sent = server.client.post(
        "/api/v1/tenants/invite-co/invitations",
        json={"email": "Invitee@Example.com", "role": "viewer"},
        headers=owner.headers,
    )
    assert sent.status_code == 201, sent.text
    assert set(sent.json()) == {"id", "email", "role", "expires_at"}
    token = last_token(
        server.data_dir / "mail", to="invitee@example.com", subject_contains="Invite Co"
    )
    assert token not in sent.text

    someone_else = User(server, "not-invitee@example.com")
    path = f"/api/v1/invitations/{token}/accept"
    _problem(
        server.client.post(path, headers=someone_else.headers), 400, "access.invitation_invalid"
    )

    invitee = User(server, "invitee@example.com")
    accepted = server.client.post(path, headers=invitee.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == "viewer"
    assert accepted.json()["tenant"]["slug"] == "invite-co"
    assert (
        server.client.get("/api/v1/tenants/invite-co", headers=invitee.headers).json()["role"]
        == "viewer"
    )
    _problem(server.client.post(path, headers=invitee.headers), 400, "access.invitation_invalid")
    _problem(
        server.client.post(
            "/api/v1/tenants/invite-co/invitations",
            json={"email": "x@example.com", "role": "member"},
            headers=invitee.headers,
        ),
        403,
        "access.permission_denied",
    )


def test_pending_invitations_are_listed_and_revoked_by_owners_only(server):
    owner = User(server, "owner-revoke@example.com")
    stranger = User(server, "stranger-revoke@example.com")
    _create(server, owner, "revoke-co", name="Revoke Co")
    sent = server.client.post(
        "/api/v1/tenants/revoke-co/invitations",
        json={"email": "later@example.com", "role": "member"},
        headers=owner.headers,
    ).json()
    listed = server.client.get("/api/v1/tenants/revoke-co/invitations", headers=owner.headers)
    assert listed.json()["items"] == [sent]
    path = f"/api/v1/tenants/revoke-co/invitations/{sent['id']}"
    _problem(server.client.delete(path, headers=stranger.headers), 404, "access.tenant_not_found")
    assert server.client.delete(path, headers=owner.headers).status_code == 204
    _problem(server.client.delete(path, headers=owner.headers), 404)
    token = last_token(server.data_dir / "mail", to="later@example.com", subject_contains="Revoke")
    later = User(server, "later@example.com")
    _problem(
        server.client.post(f"/api/v1/invitations/{token}/accept", headers=later.headers),
        400,
        "access.invitation_invalid",
    )
