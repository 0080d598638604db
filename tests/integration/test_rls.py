"""PostgreSQL row-level security alone, with the application's scoping bypassed.

Every query here is raw SQL run as the application role (``bastion_app_<random>``): no repository,
no tenant predicate of the application's. Whatever tenant B owns must stay invisible and
untouchable to a transaction bound to tenant A, and a transaction bound to nothing sees no tenant
row at all. PostgreSQL only: SQLite has no row-level security (the application's scoping is the
only guard there, and tests/isolation exercises it on both).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.audit import GENESIS_HASH
from bastion.bootstrap import build, initialise, preflight
from bastion.cli.main import app as cli
from bastion.db import bind_tenant, bind_token_digest, bind_user, make_engine, upgrade_to_head
from bastion.db.roles import app_role_problems, grant_app_role
from bastion.db.schema import _config
from bastion.errors import StartupError
from bastion.settings import DatabaseSettings, Settings
from tests.support.rls import AppRole, app_role

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
A, B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
USER_A, USER_B, OPERATOR = "user-a", "user-b", "operator"
TOKEN_A, TOKEN_B = hashlib.sha256(b"invite-a").digest(), hashlib.sha256(b"invite-b").digest()


@dataclass
class World:
    owner: sa.Engine
    app: sa.Engine
    tenant_tables: list[str]
    # What the application role may read at all (the keyring's crypto_* tables are owner-only).
    readable: list[str]


def _seed(connection: sa.Connection) -> None:
    for user, operator in ((USER_A, False), (USER_B, False), (OPERATOR, True)):
        connection.execute(
            sa.text(
                "INSERT INTO users (id, email_sealed, email_index, password_hash, is_operator, "
                "created_at, password_changed_at) VALUES (:id, '\\x00', :ix, 'x', :op, :t, :t)"
            ),
            {"id": user, "ix": hashlib.sha256(user.encode()).digest(), "op": operator, "t": NOW},
        )
    for tenant, user, token in ((A, USER_A, TOKEN_A), (B, USER_B, TOKEN_B)):
        values = {
            "tenant": tenant,
            "slug": f"slug-{tenant}",
            "name": f"secret name {tenant}",
            "invitation": f"inv-{tenant[:8]}",
            "user": user,
            "token": token,
            "t": NOW,
        }
        connection.execute(
            sa.text(
                "INSERT INTO tenants (id, slug, name, created_at) "
                "VALUES (:tenant, :slug, :name, :t)"
            ),
            values,
        )
        connection.execute(
            sa.text(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at, updated_at) "
                "VALUES (:tenant, :user, 'owner', :t, :t)"
            ),
            values,
        )
        connection.execute(
            sa.text(
                "INSERT INTO invitations (id, tenant_id, email_sealed, role, token_hash, "
                "created_at, expires_at) VALUES (:invitation, :tenant, '\\x00', 'viewer', "
                ":token, :t, :t)"
            ),
            values,
        )
    for chain, tenant in ((A, A), (B, B), ("system", None)):
        connection.execute(
            sa.text(
                "INSERT INTO audit_chain_heads (chain_id, last_seq, last_hash) VALUES (:c, 0, :g)"
            ),
            {"c": chain, "g": GENESIS_HASH},
        )
        # The query columns (tenant_id among them) are generated from the entry (0015).
        entry = {"time": "2026-11-22T12:00:00Z", "tenant": tenant, "action": "test.seeded"}
        connection.execute(
            sa.text(
                "INSERT INTO audit_events (chain_id, seq, entry, prev_hash, hash) "
                "VALUES (:c, 1, :e, :g, :h)"
            ),
            {
                "c": chain,
                "e": json.dumps({**entry, "outcome": "success", "details": {}}),
                "g": GENESIS_HASH,
                "h": "f" * 64,
            },
        )


@pytest.fixture(scope="module")
def world(postgres_databases, postgres_url):
    url, schema = postgres_databases.create_schema(postgres_url)
    owner = make_engine(url)
    upgrade_to_head(owner)
    with owner.begin() as connection:
        _seed(connection)
        tenant_tables = list(
            connection.scalars(
                sa.text(
                    "SELECT c.table_name FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' "
                    "AND t.table_type = 'BASE TABLE' ORDER BY 1"
                )
            )
        )
    role = app_role(url)
    app = make_engine(role.url)
    with owner.connect() as connection:
        readable = [
            table
            for table in tenant_tables
            if connection.scalar(
                sa.text("SELECT has_table_privilege(:r, :t, 'SELECT')"),
                {"r": role.name, "t": table},
            )
        ]
    try:
        yield World(owner=owner, app=app, tenant_tables=tenant_tables, readable=readable)
    finally:
        app.dispose()
        owner.dispose()
        role.drop()
        postgres_databases.drop_schema(postgres_url, schema)


def _count(session: Session, statement: str, **params: object) -> int:
    return int(session.execute(sa.text(statement), params).scalar_one())


def test_every_table_with_a_tenant_id_has_row_level_security_and_a_policy(world):
    """Fails for a future table with ``tenant_id`` whose migration forgot the policy."""
    with world.owner.connect() as connection:
        protected = dict(
            connection.execute(
                sa.text(
                    "SELECT c.relname, c.relrowsecurity FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                )
            ).all()
        )
        with_policy = set(
            connection.scalars(
                sa.text("SELECT tablename FROM pg_policies WHERE schemaname = current_schema()")
            )
        )
    assert {"memberships", "invitations", "audit_events"} <= set(world.tenant_tables)
    for table in [*world.tenant_tables, "tenants"]:
        assert protected[table], f"{table} has no row-level security"
        assert table in with_policy, f"{table} has no policy"


def test_the_application_role_is_one_that_row_level_security_binds(world):
    assert app_role_problems(world.app) == []
    # The owner (here a superuser) is exactly what the server refuses as its application role.
    assert app_role_problems(world.owner)


def test_with_no_tenant_context_the_application_role_sees_no_tenant_row(world):
    assert not [
        table
        for table in world.tenant_tables
        if table.startswith("crypto_") and table in world.readable
    ]
    with Session(world.app) as session:
        for table in [*world.readable, "tenants"]:
            assert _count(session, f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608


def test_bound_to_tenant_a_a_raw_query_returns_no_row_of_tenant_b(world):
    with Session(world.app) as session, session.begin():
        bind_tenant(session, A)
        for table in world.readable:
            others = f"SELECT count(*) FROM {table} WHERE tenant_id IS DISTINCT FROM :a"  # noqa: S608
            assert _count(session, others, a=A) == 0, table
        assert _count(session, "SELECT count(*) FROM memberships") == 1
        assert _count(session, "SELECT count(*) FROM invitations") == 1
        assert _count(session, "SELECT count(*) FROM audit_events") == 1
        assert session.execute(sa.text("SELECT id FROM tenants")).scalars().all() == [A]
        assert _count(session, "SELECT count(*) FROM memberships WHERE tenant_id = :b", b=B) == 0


def test_bound_to_tenant_a_nothing_of_tenant_b_can_be_changed(world):
    with Session(world.app) as session, session.begin():
        bind_tenant(session, A)
        changed = session.execute(
            sa.text("UPDATE memberships SET role = 'viewer' WHERE tenant_id = :b"), {"b": B}
        )
        assert changed.rowcount == 0
        assert session.execute(sa.text("DELETE FROM invitations")).rowcount == 1  # A's own
        assert session.execute(sa.text("DELETE FROM tenants WHERE id = :b"), {"b": B}).rowcount == 0
        session.rollback()
    with Session(world.app) as session, session.begin():
        bind_tenant(session, A)
        with pytest.raises(DBAPIError, match="row-level security"):
            session.execute(
                sa.text(
                    "INSERT INTO memberships (tenant_id, user_id, role, created_at, updated_at) "
                    "VALUES (:b, :u, 'owner', now(), now())"
                ),
                {"b": B, "u": USER_A},
            )
    with world.owner.connect() as connection:
        roles = connection.execute(
            sa.text("SELECT role FROM memberships WHERE tenant_id = :b"), {"b": B}
        )
        assert roles.scalars().all() == ["owner"]


def test_a_user_context_shows_only_that_users_memberships_and_tenants(world):
    with Session(world.app) as session, session.begin():
        bind_user(session, USER_A)
        assert session.execute(sa.text("SELECT tenant_id FROM memberships")).scalars().all() == [A]
        assert session.execute(sa.text("SELECT id FROM tenants")).scalars().all() == [A]
        assert _count(session, "SELECT count(*) FROM invitations") == 0
        # A user context alone writes nothing: a membership needs the tenant bound.
        with pytest.raises(DBAPIError, match="row-level security"):
            session.execute(
                sa.text(
                    "INSERT INTO memberships (tenant_id, user_id, role, created_at, updated_at) "
                    "VALUES (:b, :u, 'owner', now(), now())"
                ),
                {"b": B, "u": USER_A},
            )


def test_a_token_digest_shows_that_one_row_and_no_other(world):
    with Session(world.app) as session, session.begin():
        bind_token_digest(session, TOKEN_B)
        assert session.execute(sa.text("SELECT id FROM invitations")).scalars().all() == [
            f"inv-{B[:8]}"
        ]
        assert _count(session, "SELECT count(*) FROM memberships") == 0
    with Session(world.app) as session, session.begin():
        bind_token_digest(session, hashlib.sha256(b"a guess").digest())
        assert _count(session, "SELECT count(*) FROM invitations") == 0


def test_system_rows_are_written_by_anyone_and_read_only_by_an_operator(world):
    with Session(world.app) as session, session.begin():
        bind_user(session, USER_A)
        assert _count(session, "SELECT count(*) FROM audit_events") == 0
    with Session(world.app) as session, session.begin():
        bind_user(session, OPERATOR)
        system = session.execute(sa.text("SELECT chain_id FROM audit_events")).scalars().all()
        assert system == ["system"]
        # An operator sees which tenants exist, never what they hold.
        assert _count(session, "SELECT count(*) FROM tenants") == 2
        assert _count(session, "SELECT count(*) FROM memberships") == 0
        assert _count(session, "SELECT count(*) FROM invitations") == 0


def test_the_context_ends_with_its_transaction(world):
    """Pooled connections never carry one request's tenant into the next transaction."""
    engine = make_engine(world.app.url.render_as_string(hide_password=False))
    engine.pool.dispose()
    try:
        with Session(engine) as session:
            with session.begin():
                bind_tenant(session, B)
                assert _count(session, "SELECT count(*) FROM memberships") == 1
            with session.begin():
                assert _count(session, "SELECT count(*) FROM memberships") == 0
    finally:
        engine.dispose()


def test_the_migration_downgrades_and_upgrades_again(postgres_databases, postgres_url):
    from alembic import command

    url, schema = postgres_databases.create_schema(postgres_url)
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        config = _config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0013")
        with engine.connect() as connection:
            count = "SELECT count(*) FROM pg_policies WHERE schemaname = current_schema()"
            assert connection.scalar(sa.text(count)) == 0
        upgrade_to_head(engine)
        with engine.connect() as connection:
            assert connection.scalar(sa.text(count)) > 0
    finally:
        engine.dispose()
        postgres_databases.drop_schema(postgres_url, schema)


def test_the_cli_grants_a_role_that_row_level_security_binds(
    postgres_databases, postgres_url, monkeypatch
):
    url, schema = postgres_databases.create_schema(postgres_url)
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    name = f"bastion_app_{secrets.token_hex(5)}"
    app_url = make_url(url).set(username=name).render_as_string(hide_password=False)
    runner = CliRunner()
    monkeypatch.setenv("BASTION_DATABASE_URL", url)
    try:
        granted = runner.invoke(cli, ["db", "grant-app-role", name])
        assert granted.exit_code == 0, granted.output
        assert "no BYPASSRLS" in granted.output
        again = runner.invoke(cli, ["db", "grant-app-role", name])  # idempotent
        assert again.exit_code == 0, again.output
        monkeypatch.setenv("BASTION_DATABASE__APP_URL", app_url)
        checked = runner.invoke(cli, ["db", "check-app-role"])
        assert checked.exit_code == 0, checked.output
        # The owner itself is refused as the application role.
        monkeypatch.setenv("BASTION_DATABASE__APP_URL", url)
        refused = runner.invoke(cli, ["db", "check-app-role"])
        assert refused.exit_code != 0
        assert "superuser" in refused.output
        bad = runner.invoke(cli, ["db", "grant-app-role", "Robert'); DROP TABLE users;--"])
        assert bad.exit_code != 0
    finally:
        AppRole(name=name, url=app_url, owner_url=url).drop()
        postgres_databases.drop_schema(postgres_url, schema)


def test_start_up_refuses_an_application_role_row_level_security_would_not_bind(
    postgres_databases, postgres_url, tmp_path
):
    url, schema = postgres_databases.create_schema(postgres_url)
    settings = Settings(env="test", data_dir=tmp_path / "data", database_url=url)
    try:
        initialise(settings)
        # The owner (a superuser here) named as the application role.
        unsafe = settings.model_copy(update={"database": DatabaseSettings(app_url=url)})
        container = build(unsafe)
        try:
            with pytest.raises(StartupError, match=r"database\.app_url: .* is a superuser"):
                preflight(container)
        finally:
            container.request_engine.dispose()
            container.engine.dispose()
    finally:
        postgres_databases.drop_schema(postgres_url, schema)


def test_missing_grants_are_a_problem_until_granted_again(world):
    """After a restore (pg_restore --no-privileges) the role has no grants: say what to run."""
    name = world.app.url.username
    with world.owner.begin() as connection:
        connection.execute(sa.text(f'REVOKE ALL ON memberships FROM "{name}"'))
    try:
        problems = app_role_problems(world.app)
        assert problems == [
            f"the application role {name} lacks privileges on 1 table(s); "
            f"run `bastion db grant-app-role {name}`"
        ]
    finally:
        grant_app_role(world.owner, name)
    assert app_role_problems(world.app) == []
