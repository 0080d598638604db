"""A PostgreSQL application role for row-level-security tests (trust auth on the local server).

``app_role(owner_url)`` creates ``bastion_app_<random>`` with the grants ``bastion db
grant-app-role`` gives, and returns the URL that connects as it to the same schema. ``drop`` takes
the role's privileges back and drops it, so no role outlives the test run.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bastion.db import make_engine
from bastion.db.roles import grant_app_role


@dataclass(frozen=True)
class AppRole:
    name: str
    url: str
    owner_url: str

    def drop(self) -> None:
        database = make_url(self.owner_url).set(query={}).render_as_string(hide_password=False)
        with psycopg.connect(database, autocommit=True, connect_timeout=3) as connection:
            role = sql.Identifier(self.name)
            # Privileges and default privileges live in the database; the role only then goes.
            connection.execute(sql.SQL("DROP OWNED BY {}").format(role))
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


def app_role(owner_url: str) -> AppRole:
    """A new application role granted on ``owner_url``'s schema (already migrated)."""
    name = f"bastion_app_{secrets.token_hex(5)}"
    owner = make_engine(owner_url)
    try:
        grant_app_role(owner, name)
    finally:
        owner.dispose()
    url = make_url(owner_url).set(username=name, password=None)
    return AppRole(name=name, url=url.render_as_string(hide_password=False), owner_url=owner_url)
