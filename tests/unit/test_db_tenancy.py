"""The tenant context binds only where row-level security can read it (PostgreSQL, a role the
policies bind); elsewhere it costs nothing, not even a round trip."""

from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from bastion.db import bind_tenant, bind_token_digest, bind_user
from bastion.db.tenancy import TENANT_CONTEXT_INFO


def _bind_everything(session):
    bind_user(session, "user")
    bind_tenant(session, "tenant")
    bind_token_digest(session, b"\x00" * 32)


def test_on_sqlite_binding_runs_no_statement():
    engine = create_engine("sqlite://")
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with Session(engine) as session:
        _bind_everything(session)
    assert statements == []


def test_a_session_of_the_owner_never_touches_the_database_to_bind():
    # Nothing listens on port 1: any round trip would raise.
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with Session(engine, info={TENANT_CONTEXT_INFO: False}) as session:
        _bind_everything(session)
