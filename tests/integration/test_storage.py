"""Storage on both backends: connection policy, migrations, schema-version refusal."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from bastion.db import (
    SchemaState,
    assert_schema_current,
    make_engine,
    schema_state,
    upgrade_to_head,
)
from bastion.errors import StartupError
from bastion.identity import BootstrapTokenInvalid, FirstOperatorBootstrap
from bastion.kernel.clock import FrozenClock
from bastion.kernel.ids import token_digest


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    yield engine
    engine.dispose()


def test_sqlite_connections_use_wal_full_sync_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}", create=True)
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 5000
    engine.dispose()


def test_a_missing_sqlite_file_is_an_error_not_a_new_empty_database(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'gone.db'}")
    with pytest.raises(Exception, match="unable to open database file"):
        engine.connect()
    assert not (tmp_path / "gone.db").exists()


def test_unmigrated_database_is_refused_with_what_to_run(engine):
    assert schema_state(engine).state is SchemaState.NOT_MIGRATED
    with pytest.raises(StartupError, match="has not been migrated; run `bastion migrate`"):
        assert_schema_current(engine)


def test_migrations_bring_the_schema_to_head_and_are_idempotent(engine):
    before, after = upgrade_to_head(engine)
    assert before is None
    assert schema_state(engine).state is SchemaState.CURRENT
    assert upgrade_to_head(engine) == (after, after)
    assert_schema_current(engine)


def test_a_schema_newer_than_the_code_is_refused(engine):
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    assert schema_state(engine).state is SchemaState.NEWER_THAN_CODE
    with pytest.raises(StartupError, match="newer than this Bastion"):
        assert_schema_current(engine)


def _schema(engine):
    inspector = inspect(engine)
    return {
        table: sorted(
            (c["name"], type(c["type"]).__name__.lower().replace("blob", "largebinary"))
            for c in inspector.get_columns(table)
        )
        for table in sorted(inspector.get_table_names())
    }


def test_the_same_migrations_build_the_same_tables_and_columns_on_both_backends(
    tmp_path, postgres_databases
):
    sqlite = make_engine(f"sqlite:///{tmp_path / 's.db'}", create=True)
    postgres = make_engine(postgres_databases.create())
    try:
        upgrade_to_head(sqlite)
        upgrade_to_head(postgres)
        sqlite_schema, postgres_schema = _schema(sqlite), _schema(postgres)
        assert sqlite_schema.keys() == postgres_schema.keys()
        for table, columns in sqlite_schema.items():
            assert [name for name, _ in columns] == [name for name, _ in postgres_schema[table]]
    finally:
        sqlite.dispose()
        postgres.dispose()


class TestFirstOperatorBootstrap:
    NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    @pytest.fixture
    def setup(self, engine):
        upgrade_to_head(engine)
        clock = FrozenClock(self.NOW)
        return engine, clock, FirstOperatorBootstrap(clock=clock)

    def test_link_is_issued_only_on_the_very_first_start(self, setup):
        engine, _, bootstrap = setup
        with engine.begin() as connection, Session(bind=connection) as session:
            assert bootstrap.issue_if_first_start(session) is not None
            assert bootstrap.issue_if_first_start(session) is None

    def test_only_the_hash_of_the_token_is_stored(self, setup):
        engine, _, bootstrap = setup
        with Session(engine) as session, session.begin():
            issued = bootstrap.issue(session)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT token_hash FROM bootstrap_tokens")).scalar()
        assert bytes(stored) == token_digest(issued.token)
        assert issued.token.encode() not in bytes(stored)

    def test_token_works_once(self, setup):
        engine, _, bootstrap = setup
        with Session(engine) as session, session.begin():
            issued = bootstrap.issue(session)
        with Session(engine) as session, session.begin():
            bootstrap.redeem(session, issued.token)
        with Session(engine) as session, pytest.raises(BootstrapTokenInvalid):
            bootstrap.check(session, issued.token)

    def test_token_expires_after_one_hour(self, setup):
        engine, clock, bootstrap = setup
        with Session(engine) as session, session.begin():
            issued = bootstrap.issue(session)
        clock.set(self.NOW + timedelta(minutes=59))
        with Session(engine) as session:
            bootstrap.check(session, issued.token)
        clock.set(self.NOW + timedelta(hours=1))
        with Session(engine) as session, pytest.raises(BootstrapTokenInvalid):
            bootstrap.check(session, issued.token)

    def test_a_new_link_revokes_the_old_one_and_unknown_tokens_fail(self, setup):
        engine, _, bootstrap = setup
        with Session(engine) as session, session.begin():
            old = bootstrap.issue(session)
            new = bootstrap.issue(session)
        with Session(engine) as session:
            bootstrap.check(session, new.token)
            with pytest.raises(BootstrapTokenInvalid):
                bootstrap.check(session, old.token)
            with pytest.raises(BootstrapTokenInvalid):
                bootstrap.check(session, "x" * 43)
