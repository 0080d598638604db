"""Schema version: run the migrations, and refuse to serve a database the code does not match."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from bastion.errors import StartupError

SCRIPT_LOCATION = "bastion.db:migrations"


class SchemaState(enum.StrEnum):
    CURRENT = "current"
    NOT_MIGRATED = "not-migrated"
    BEHIND = "behind"
    NEWER_THAN_CODE = "newer-than-code"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    state: SchemaState
    database_revision: str | None
    code_revision: str


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def code_head() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StartupError("no migrations are packaged with this build")
    return head


def schema_state(engine: Engine) -> SchemaStatus:
    script = ScriptDirectory.from_config(_config())
    head = code_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        state = SchemaState.NOT_MIGRATED
    elif current == head:
        state = SchemaState.CURRENT
    elif current in {rev.revision for rev in script.walk_revisions()}:
        state = SchemaState.BEHIND
    else:
        state = SchemaState.NEWER_THAN_CODE
    return SchemaStatus(state=state, database_revision=current, code_revision=head)


def assert_schema_current(engine: Engine) -> None:
    """Raise StartupError, saying what to run, unless the schema is exactly the code's head."""
    status = schema_state(engine)
    if status.state is SchemaState.CURRENT:
        return
    if status.state is SchemaState.NEWER_THAN_CODE:
        raise StartupError(
            f"the database schema ({status.database_revision}) is newer than this Bastion "
            f"({status.code_revision}); run the newer Bastion, or restore a matching backup"
        )
    what = "has not been migrated" if status.state is SchemaState.NOT_MIGRATED else "is behind"
    raise StartupError(f"the database schema {what}; run `bastion migrate` first")


def upgrade_to_head(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration; returns (revision before, revision after)."""
    before = schema_state(engine).database_revision
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, code_head()
