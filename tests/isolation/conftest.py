"""One world per backend: SQLite (the application's scoping alone) and PostgreSQL, where the
app runs as an application role bound by row-level security (``database.app_url``)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from bastion.api.access import route_access
from bastion.api.app import create_app
from bastion.bootstrap import Container, build, initialise, preflight
from bastion.settings import Settings
from tests.isolation.client import InProcessClient
from tests.isolation.world import SnapshotOfB, Tenant, build_tenant
from tests.support.identity import CHEAP_ARGON2
from tests.support.rls import AppRole, app_role


@dataclass
class World:
    backend: str
    app: FastAPI
    client: InProcessClient
    container: Container
    a: Tenant
    b: Tenant
    snapshot_of_b: SnapshotOfB
    b_before: dict[str, list[str]]


def _settings(tmp_path, **database) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "data",
        identity=CHEAP_ARGON2,
        jobs={"enabled": False},
        # Isolation is the subject here; the many sign-ins and calls of one client address must
        # not turn into 429s (rate limits have their own suite).
        rate_limits={"enabled": False},
        **database,
    )


@pytest.fixture(
    scope="package", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def world(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"isolation-{request.param}")
    role: AppRole | None = None
    if request.param == "sqlite":
        settings = _settings(tmp_path)
        initialise(settings)
    else:
        databases = request.getfixturevalue("postgres_databases")
        owner_url = databases.create()
        initialise(_settings(tmp_path, database_url=owner_url))
        role = app_role(owner_url)
        settings = _settings(tmp_path, database_url=owner_url, database={"app_url": role.url})
    container = build(settings)
    try:
        preflight(container)  # on PostgreSQL: proves the app role is one RLS binds
        app = create_app(container)
        client = InProcessClient(app)
        paths = {route.path for route in route_access(app)}
        a = build_tenant(client, "alpha", paths)
        b = build_tenant(client, "bravo", paths)
        try:
            snapshot = SnapshotOfB(container.engine, b)
            yield World(request.param, app, client, container, a, b, snapshot, snapshot())
        finally:
            client.close()
    finally:
        container.read_audit.close()
        container.request_engine.dispose()
        container.engine.dispose()
        if role is not None:
            role.drop()
