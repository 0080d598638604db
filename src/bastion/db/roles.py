"""The PostgreSQL application role: created and granted by the owner, checked at start-up.

Two roles (docs/operations.md, "PostgreSQL roles"): the *owner* owns every table, runs the
migrations, the jobs and the CLI; the *application role* is what the HTTP server connects as
(``database.app_url``). It may only SELECT, INSERT, UPDATE and DELETE, owns nothing, and is
neither superuser nor BYPASSRLS, so the row-level security policies of migration 0014 bind it.
"""

from __future__ import annotations

import re
from typing import Final

from psycopg import sql
from sqlalchemy import Connection, Engine, text

from bastion.errors import StartupError

ROLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The keyring (wrapped data keys, re-encryption progress, erasures) runs on the owner
# connection; the application role has no reason to read wrapped keys at all.
OWNER_ONLY_PREFIXES: Final = ("crypto_",)
READ_ONLY_TABLES: Final = frozenset({"alembic_version"})


def _quoted(name: str) -> str:
    if not ROLE_NAME.fullmatch(name):
        raise StartupError(f"role name {name!r} must match {ROLE_NAME.pattern}")
    return f'"{name}"'


def grant_app_role(owner: Engine, name: str, *, password: str | None = None) -> list[str]:
    """Create ``name`` if missing (LOGIN, NOSUPERUSER, NOBYPASSRLS...) and grant it the DML it
    needs on the current schema; returns the tables granted. Idempotent: run it again after a
    migration (default privileges also cover tables the owner creates later)."""
    role = _quoted(name)
    with owner.begin() as connection:
        if connection.dialect.name != "postgresql":
            raise StartupError("an application role exists only on PostgreSQL")
        exists = connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name})
        if not exists:
            connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(
            text(
                f"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                "NOREPLICATION INHERIT"
            )
        )
        if password is not None:
            _set_password(connection, name, password)
        return _grant(connection, role)


def _set_password(connection: Connection, name: str, password: str) -> None:
    # ALTER ROLE takes no bind parameters: psycopg quotes the literal on the client.
    raw = connection.connection.dbapi_connection
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(password)
    )
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(statement)


def _grant(connection: Connection, role: str) -> list[str]:
    schema = connection.scalar(text("SELECT current_schema()"))
    database = connection.scalar(text("SELECT current_database()"))
    connection.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
    connection.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
    tables = list(
        connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
            {"s": schema},
        )
    )
    granted = []
    for table in tables:
        target = f'"{schema}"."{table}"'
        if table.startswith(OWNER_ONLY_PREFIXES):
            connection.execute(text(f"REVOKE ALL ON {target} FROM {role}"))
            continue
        rights = "SELECT" if table in READ_ONLY_TABLES else "SELECT, INSERT, UPDATE, DELETE"
        connection.execute(text(f"GRANT {rights} ON {target} TO {role}"))
        granted.append(table)
    connection.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}'))
    connection.execute(
        text(
            f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
        )
    )
    connection.execute(
        text(
            f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" '
            f"GRANT USAGE, SELECT ON SEQUENCES TO {role}"
        )
    )
    return granted


def app_role_problems(app: Engine) -> list[str]:
    """Why the role ``app`` connects as would not be bound by row-level security; empty if it
    would. Fail closed: the server refuses to start on any of these (``bootstrap.preflight``)."""
    problems = []
    with app.connect() as connection:
        row = connection.execute(
            text(
                "SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r "
                "WHERE r.rolname = current_user"
            )
        ).one()
        name, is_superuser, bypasses = str(row[0]), bool(row[1]), bool(row[2])
        if is_superuser:
            problems.append(f"the application role {name} is a superuser")
        if bypasses:
            problems.append(f"the application role {name} has BYPASSRLS")
        owned = connection.scalar(
            text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tableowner = current_user"
            )
        )
        if owned:
            problems.append(f"the application role {name} owns {owned} table(s)")
        unprotected = connection.scalar(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
                "AND NOT c.relrowsecurity"
            )
        )
        ungranted = connection.scalar(
            text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version' AND tablename NOT LIKE 'crypto\\_%' "
                "AND NOT has_table_privilege(current_user, "
                "format('%I.%I', schemaname, tablename), 'SELECT, INSERT, UPDATE, DELETE')"
            )
        )
        if ungranted:
            # After a restore (pg_restore --no-privileges) or a new table: grants are missing.
            problems.append(
                f"the application role {name} lacks privileges on {ungranted} table(s); "
                f"run `bastion db grant-app-role {name}`"
            )
        if unprotected:
            problems.append(
                f"{unprotected} tenant-owned table(s) have no row-level security; "
                "run `bastion migrate`"
            )
    return problems
