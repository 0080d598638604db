"""PostgreSQL: pg_dump of an exported snapshot while writes run, pg_restore into an empty one."""

import pytest
from sqlalchemy import text

from bastion.backup import RestoreRefused, run_drill
from bastion.crypto import Keyring, TenantErasedError
from bastion.db import UnitOfWork, make_engine
from tests.integration.backup.conftest import TENANT
from tests.support.backup import (
    create_app_table,
    insert_rows,
    installation,
    require_pg_tools,
    table_contents,
    writes_running,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_container(make_settings, postgres_databases, tmp_path):
    settings = make_settings(
        database_url=postgres_databases.create(),
        data_dir=tmp_path / "pg-data",
        backup={"zstd_threads": 1},
    )
    container = installation(settings)
    require_pg_tools(container.engine)
    create_app_table(container.engine)
    insert_rows(container.engine, 1, 500)
    yield container
    container.engine.dispose()


def _triggers(engine):
    with engine.connect() as connection:
        return sorted(
            connection.execute(
                text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
            ).scalars()
        )


@pytest.fixture
def empty_database(postgres_databases):
    return postgres_databases.create()


def test_every_table_is_equal_after_a_round_trip(pg_container, empty_database):
    service = pg_container.backup
    before = table_contents(pg_container.engine)
    created = service.create()
    manifest = service.manifest(created.backup.backup_id)
    assert manifest.backend == "postgresql"
    assert manifest.server_version is not None
    report = service.restore(created.backup.backup_id, database_url=empty_database)
    restored = make_engine(empty_database)
    try:
        assert table_contents(restored) == before
        # The append-only guards came back with the data.
        assert _triggers(restored) == _triggers(pg_container.engine)
        assert _triggers(restored)
    finally:
        restored.dispose()
    assert report.tables["app_rows"] == 500


def test_a_backup_taken_while_writes_run_is_one_consistent_instant(pg_container, empty_database):
    service = pg_container.backup
    insert_rows(pg_container.engine, 10_000, 20_000)
    with writes_running(pg_container.engine) as batches:
        created = service.create()
    assert batches, "the writer made no progress during the backup"
    service.restore(created.backup.backup_id, database_url=empty_database)
    restored = make_engine(empty_database)
    try:
        with restored.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM app_rows")).scalar_one()
            total = connection.execute(text("SELECT total FROM app_total")).scalar_one()
        restored_tables = table_contents(restored)
    finally:
        restored.dispose()
    # Rows and their running total were written in one transaction: equal iff consistent.
    assert rows == total
    # Every row the backup holds is exactly a row the live database had (append-only tables).
    live = table_contents(pg_container.engine)
    for table in ("app_rows", "audit_events", "crypto_erasures"):
        assert set(restored_tables[table]) <= set(live[table]), table
    assert len(restored_tables["app_rows"]) < len(live["app_rows"])


def test_restore_into_a_non_empty_database_is_refused_unless_forced(pg_container, empty_database):
    service = pg_container.backup
    backup_id = service.create().backup.backup_id
    service.restore(backup_id, database_url=empty_database)
    with pytest.raises(RestoreRefused, match="not empty"):
        service.restore(backup_id, database_url=empty_database)
    other = make_engine(empty_database)
    try:
        insert_rows(other, 9_000, 10)
    finally:
        other.dispose()
    report = service.restore(backup_id, database_url=empty_database, force=True)
    assert report.tables["app_rows"] == 500


def test_erased_tenants_stay_erased_after_a_restore(pg_container, empty_database):
    keyring = pg_container.keyring
    keyring.provision_tenant(TENANT)
    sealed = keyring.seal(TENANT, purpose="records", record_id="r1", plaintext=b"secret")
    backup_id = pg_container.backup.create().backup.backup_id
    keyring.shred_tenant(TENANT)
    report = pg_container.backup.restore(backup_id, database_url=empty_database)
    assert report.erasures_replayed == 1
    engine = make_engine(empty_database)
    try:
        restored = Keyring(
            uow=UnitOfWork(engine), provider=keyring.provider, clock=pg_container.clock
        )
        with pytest.raises(TenantErasedError):
            restored.open(TENANT, purpose="records", record_id="r1", sealed=sealed)
    finally:
        engine.dispose()


def test_a_drill_restores_into_the_drill_database_every_time(pg_container, empty_database):
    service = pg_container.backup
    service.create()
    url = empty_database
    first = run_drill(service, drill_database_url=url)
    second = run_drill(service, drill_database_url=url)
    assert first.ok, first.detail
    assert second.ok, second.detail
    assert service.drills(limit=2) == [second, first]


def test_an_unreachable_restore_database_is_a_clear_error(pg_container):
    from bastion.backup import BackupError

    backup_id = pg_container.backup.create().backup.backup_id
    with pytest.raises(BackupError, match="cannot connect to the restore database nowhere"):
        pg_container.backup.restore(
            backup_id, database_url="postgresql://postgres@127.0.0.1:1/nowhere"
        )


def test_a_sqlite_backup_cannot_be_restored_into_postgresql(container, empty_database):
    from bastion.errors import InvalidInput

    backup_id = container.backup.create().backup.backup_id
    with pytest.raises(InvalidInput, match="is a sqlite backup"):
        container.backup.restore(backup_id, database_url=empty_database)
