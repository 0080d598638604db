"""SQLite: backup while writes run, restore into a fresh data directory, every table equal."""

import pytest
from sqlalchemy import text

from bastion.audit import AuditEvent
from bastion.backup import RestoreRefused
from bastion.crypto import Keyring, TenantErasedError
from bastion.db import UnitOfWork, make_engine
from tests.integration.backup.conftest import OTHER_TENANT, TENANT
from tests.support.backup import insert_rows, table_contents, writes_running


def _system_actions(container):
    with container.engine.connect() as connection:
        return [
            row[0]
            for row in connection.execute(
                text("SELECT action FROM audit_events WHERE chain_id = 'system' ORDER BY seq")
            )
        ]


def test_every_table_is_equal_after_a_round_trip(container, service, tmp_path):
    before = table_contents(container.engine)
    created = service.create()
    target = tmp_path / "restored"
    report = service.restore(created.backup.backup_id, data_dir=target)
    restored = make_engine(f"sqlite:///{target / 'bastion.db'}")
    try:
        assert table_contents(restored) == before
    finally:
        restored.dispose()
    assert report.tables["app_rows"] == 500
    assert report.restored_bytes == created.backup.plaintext_bytes
    assert (target / "bastion.db").stat().st_mode & 0o777 == 0o600


def test_a_backup_taken_while_writes_run_is_one_consistent_instant(container, service, tmp_path):
    insert_rows(container.engine, 10_000, 20_000)  # big enough that the copy takes a moment
    with writes_running(container.engine) as batches:
        created = service.create()
    assert batches, "the writer made no progress during the backup"
    target = tmp_path / "restored"
    service.restore(created.backup.backup_id, data_dir=target)
    restored = make_engine(f"sqlite:///{target / 'bastion.db'}")
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
    live = table_contents(container.engine)
    for table in ("app_rows", "audit_events", "crypto_erasures"):
        assert set(restored_tables[table]) <= set(live[table]), table
    assert len(restored_tables["app_rows"]) < len(live["app_rows"])


def test_restore_into_an_existing_database_is_refused_unless_forced(service, tmp_path):
    backup_id = service.create().backup.backup_id
    target = tmp_path / "restored"
    service.restore(backup_id, data_dir=target)
    with pytest.raises(RestoreRefused, match="already exists"):
        service.restore(backup_id, data_dir=target)
    report = service.restore(backup_id, data_dir=target, force=True)
    assert report.tables["app_rows"] == 500


def test_erased_tenants_stay_erased_after_a_restore(container, service, tmp_path):
    keyring = container.keyring
    keyring.provision_tenant(TENANT)
    keyring.provision_tenant(OTHER_TENANT)
    sealed = keyring.seal(TENANT, purpose="records", record_id="r1", plaintext=b"secret")
    kept = keyring.seal(OTHER_TENANT, purpose="records", record_id="r1", plaintext=b"kept")
    backup_id = service.create().backup.backup_id
    keyring.shred_tenant(TENANT)  # after the backup: the backup still holds the tenant's keys

    target = tmp_path / "restored"
    report = service.restore(backup_id, data_dir=target)
    assert report.erasures_replayed == 1
    engine = make_engine(f"sqlite:///{target / 'bastion.db'}")
    try:
        restored = Keyring(uow=UnitOfWork(engine), provider=keyring.provider, clock=container.clock)
        with pytest.raises(TenantErasedError):
            restored.open(TENANT, purpose="records", record_id="r1", sealed=sealed)
        assert (
            restored.open(OTHER_TENANT, purpose="records", record_id="r1", sealed=kept) == b"kept"
        )
    finally:
        engine.dispose()


def test_runs_and_restores_are_audited_on_the_system_chain(container, service, tmp_path):
    backup_id = service.create().backup.backup_id
    service.verify(backup_id)
    service.restore(backup_id, data_dir=tmp_path / "restored")
    actions = _system_actions(container)
    assert actions[-3:] == ["backup.created", "backup.verified", "backup.restored"]


def _heads(container):
    with container.engine.connect() as connection:
        return dict(
            connection.execute(text("SELECT chain_id, last_seq FROM audit_chain_heads")).all()
        )


def test_the_manifest_records_the_audit_heads_and_schema(container, service):
    with container.uow.begin() as session:
        container.audit_log.append(session, AuditEvent(action="test.before_backup"))
        container.audit_log.append(session, AuditEvent(action="test.tenant", tenant_id=TENANT))
    before = _heads(container)
    created = service.create()
    manifest = service.manifest(created.backup.backup_id)
    assert manifest.schema_revision is not None
    assert manifest.backend == "sqlite"
    # The heads as they were at the snapshot, i.e. before backup.created was appended.
    assert {chain: head.seq for chain, head in manifest.audit_heads.items()} == before
    assert before[TENANT] == 1
    assert _heads(container)["system"] == before["system"] + 1
