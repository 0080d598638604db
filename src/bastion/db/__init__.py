"""Storage: SQLAlchemy engine set-up, the declarative base, migrations and schema-version checks.

Owns connection policy (SQLite pragmas, PostgreSQL driver), the PostgreSQL application role and
the per-transaction tenant context that row-level security reads (``tenancy``), and nothing about
any domain's tables.
"""

from bastion.db.base import Base
from bastion.db.engine import make_engine, normalise_url
from bastion.db.schema import SchemaState, assert_schema_current, schema_state, upgrade_to_head
from bastion.db.session import UnitOfWork
from bastion.db.tenancy import bind_tenant, bind_token_digest, bind_user

__all__ = [
    "Base",
    "SchemaState",
    "UnitOfWork",
    "assert_schema_current",
    "bind_tenant",
    "bind_token_digest",
    "bind_user",
    "make_engine",
    "normalise_url",
    "schema_state",
    "upgrade_to_head",
]
