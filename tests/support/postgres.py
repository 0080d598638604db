"""Fresh PostgreSQL databases on the local server (127.0.0.1:5432, user postgres, trust auth).

Unreachable server: the tests that need it are skipped with the reason, except with CI=true,
where the run fails instead (a CI that silently skips PostgreSQL proves nothing).
"""

from __future__ import annotations

import os
import secrets

import psycopg
import pytest
from psycopg import sql

ADMIN_DSN = os.environ.get(
    "BASTION_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)


def require_postgres() -> None:
    try:
        with _admin_connection() as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = f"PostgreSQL at {ADMIN_DSN} is unreachable: {exc}".strip()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)", pytrace=False)
        pytest.skip(reason)


class PostgresDatabases:
    """Creates uniquely named databases and drops every one of them at the end."""

    def __init__(self) -> None:
        self._created: list[str] = []

    def create(self) -> str:
        name = f"bastion_test_{secrets.token_hex(6)}"
        with _admin_connection() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        base = ADMIN_DSN.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def create_schema(self, database_url: str) -> tuple[str, str]:
        """An empty schema in ``database_url``'s database, as (url that uses it, schema name).

        Far cheaper than a database per test: DROP SCHEMA needs no checkpoint, DROP DATABASE
        forces one on PostgreSQL 15. Connections through the returned URL see only that schema
        (search_path), so migrations, triggers and tables land in it.
        """
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return f"{database_url}?options=-csearch_path%3D{name}", name

    @staticmethod
    def drop_schema(database_url: str, name: str) -> None:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )

    def drop_all(self) -> None:
        with _admin_connection() as connection:
            for name in self._created:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self._created.clear()
