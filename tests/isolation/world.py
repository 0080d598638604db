"""Two tenants, A and B, each with a member of every role, built through the HTTP API.

B's objects (tenant id and slug, member ids, a pending invitation, sessions, a collection and a
record) are what tenant A's principals try to reach; B's *markers* (its name, its members'
addresses, its record's content) must never appear in an answer to A. ``snapshot_of_b`` reads
everything B owns straight from the database (owner connection, below the application), so a
test can show that nothing of B changed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tests.isolation.client import InProcessClient

PASSWORD = "correct horse battery staple"
ROLES = ("owner", "admin", "member", "viewer", "auditor")


@dataclass
class Principal:
    role: str
    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenant:
    id: str
    slug: str
    name: str
    members: dict[str, Principal]
    # Object ids by the path parameter that names them (see operations.CANDIDATES).
    objects: dict[str, list[str]] = field(default_factory=dict)
    markers: list[str] = field(default_factory=list)


def _call(client: InProcessClient, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    client.cookies.clear()  # bearer tokens only: no session cookie carries over between calls
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def _principal(client: InProcessClient, label: str, role: str) -> Principal:
    email = f"{label}-{role}-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": PASSWORD}
    user = _call(client, "POST", "/api/v1/auth/signup", json=body)
    token = _call(client, "POST", "/api/v1/auth/login", json=body)["token"]
    return Principal(role=role, user_id=user["id"], email=email, token=token)


def build_tenant(client: InProcessClient, label: str, paths: set[str]) -> Tenant:
    """A tenant with one member per role; ``paths`` (the app's route table) decides which
    optional objects (records...) exist to be attacked."""
    members = {role: _principal(client, label, role) for role in ROLES}
    owner = members["owner"]
    suffix = secrets.token_hex(3)
    name = f"{label.title()} Secret Corp {suffix}"
    created = _call(
        client,
        "POST",
        "/api/v1/tenants",
        json={"name": name, "slug": f"{label}-{suffix}"},
        headers=owner.headers,
    )
    tenant = Tenant(id=created["id"], slug=created["slug"], name=name, members=members)
    base = f"/api/v1/tenants/{tenant.id}"
    for role, member in members.items():
        if role != "owner":
            body = {"user_id": member.user_id, "role": role}
            _call(client, "POST", f"{base}/members", json=body, headers=owner.headers)
    invitee = f"{label}-invitee-{suffix}@example.com"
    invitation = _call(
        client,
        "POST",
        f"{base}/invitations",
        json={"email": invitee, "role": "viewer"},
        headers=owner.headers,
    )
    sessions = [
        item["id"]
        for member in members.values()
        for item in _call(client, "GET", "/api/v1/me/sessions", headers=member.headers)["items"]
    ]
    tenant.objects = {
        "user": [member.user_id for member in members.values()],
        "invitation": [invitation["id"]],
        "session_id": sessions,
    }
    tenant.markers = [name, invitee, *(member.email for member in members.values())]
    if "/api/v1/tenants/{tenant}/collections/{name}/records" in paths:
        _add_records(client, tenant, label, suffix)
    if "/api/v1/tenants/{tenant}/roles/{role}" in paths:
        _add_custom_role(client, tenant, label, suffix)
    return tenant


def _add_custom_role(client: InProcessClient, tenant: Tenant, label: str, suffix: str) -> None:
    name = f"{label}-readers-{suffix}"
    role = _call(
        client,
        "POST",
        f"/api/v1/tenants/{tenant.id}/roles",
        json={"name": name, "permissions": ["audit:event:read"]},
        headers=tenant.members["owner"].headers,
    )
    tenant.objects["role"] = [role["id"], name]
    tenant.markers.append(name)


def _add_records(client: InProcessClient, tenant: Tenant, label: str, suffix: str) -> None:
    owner = tenant.members["owner"]
    collection = f"{label}_secrets_{suffix}"
    base = f"/api/v1/tenants/{tenant.id}/collections"
    _call(client, "POST", base, json={"name": collection}, headers=owner.headers)
    content = f"{label} record content {suffix}"
    record = _call(
        client,
        "POST",
        f"{base}/{collection}/records",
        json={"note": content},
        headers=owner.headers,
    )
    tenant.objects["name"] = [collection]
    tenant.objects["record_id"] = [record["id"]]
    tenant.markers += [collection, content]


class SnapshotOfB:
    """Every row B owns, and its members' accounts and sessions, read as the owner.

    The tables are reflected once (reflection costs dozens of catalogue queries on PostgreSQL);
    each call then reads B's rows afresh.
    """

    def __init__(self, engine: sa.Engine, tenant: Tenant) -> None:
        self._engine = engine
        users = tenant.objects["user"]
        inspector = sa.inspect(engine)
        self._queries: dict[str, sa.Select[Any]] = {}
        for table_name in inspector.get_table_names():
            columns = sorted(column["name"] for column in inspector.get_columns(table_name))
            table = sa.table(table_name, *(sa.column(name) for name in columns))
            if "tenant_id" in columns:
                where = table.c.tenant_id == tenant.id
            elif table_name == "tenants":
                where = table.c.id == tenant.id
            elif table_name in {"users", "auth_sessions"}:
                key = table.c.id if table_name == "users" else table.c.user_id
                where = key.in_(users)
            else:
                continue
            self._queries[table_name] = sa.select(table).where(where)

    def __call__(self) -> dict[str, list[str]]:
        with self._engine.connect() as connection:
            return {
                name: sorted(repr(tuple(row)) for row in connection.execute(query))
                for name, query in self._queries.items()
            }
