"""Storage: SQLAlchemy engine set-up, the declarative base, migrations and schema-version checks.

Owns connection policy (SQLite pragmas, PostgreSQL driver) and nothing about any domain's tables.
"""

from bastion.db.base import Base
from bastion.db.engine import make_engine, normalise_url
from bastion.db.schema import SchemaState, assert_schema_current, schema_state, upgrade_to_head
from bastion.db.session import UnitOfWork

__all__ = [
    "Base",
    "SchemaState",
    "UnitOfWork",
    "assert_schema_current",
    "make_engine",
    "normalise_url",
    "schema_state",
    "upgrade_to_head",
]
