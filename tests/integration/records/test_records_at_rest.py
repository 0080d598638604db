"""What records leave at rest and under attack, on SQLite and PostgreSQL: no plaintext in the
database files or a dump, ciphertexts bound to their record and tenant, key rotation, the purge
job, and concurrent writers with stale ETags."""

import shutil
import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from bastion.alerts import SqlSecurityEvents
from bastion.alerts.models import SecurityEventRow
from bastion.alerts.types import Severity
from bastion.audit import AuditFilter, AuditQuery
from bastion.db.engine import sqlite_path
from bastion.records import (
    RecordIntegrityError,
    RecordNotFound,
    SqlRecords,
    TamperAlarm,
    VersionMismatch,
    purge_expired,
)
from bastion.records.models import RecordRow
from bastion.records.reencryption import RecordsReencryptionTarget
from bastion.settings import AlertsSettings
from tests.support.identity import CLIENT

MARKER = "zq-marker-7f3a9c1e-plaintext"


def _collection(tenant, records, name="notes", indexed=("secret",)):
    return tenant.run(
        records.collections.create,
        name=name,
        json_schema=None,
        indexed=list(indexed),
        audit_reads=True,
        client=CLIENT,
    )


def _create(tenant, records, document, collection="notes"):
    return tenant.run(records.create, collection, document=document, client=CLIENT)


def _read(tenant, records, record_id, collection="notes"):
    return tenant.run(records.read, collection, record_id, client=CLIENT).record


def _database_bytes(database_url, engine):
    """Every byte the database holds: the SQLite files, or a plain pg_dump of the schema."""
    path = sqlite_path(database_url)
    if path is not None:
        engine.dispose()  # nothing cached in a connection; the WAL is read as well
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    parts = urlsplit(database_url)
    schema = parse_qs(parts.query)["options"][0].rsplit("=", 1)[1]
    base = parts._replace(query="").geturl()
    dumped = subprocess.run(
        [pg_dump, "--dbname", base, "--schema", schema, "--no-owner"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return dumped.stdout


def test_no_plaintext_of_a_record_reaches_the_database(acme, records, engine, database_url):
    _collection(acme, records)
    created = _create(acme, records, {"secret": MARKER, "note": f"about {MARKER}"})
    acme.run(
        records.patch, "notes", created.id, patch={"other": MARKER}, if_match=None, client=CLIENT
    )
    page = acme.run(
        records.page, "notes", filters={"secret": MARKER}, after=None, limit=5, client=CLIENT
    ).page
    assert [r.id for r in page.items] == [created.id]  # found through the blind index
    stored = _database_bytes(database_url, engine)
    assert b"notes" in stored  # the dump did capture the tables
    assert MARKER.encode() not in stored
    assert MARKER.encode("utf-16-le") not in stored


@pytest.fixture
def alarmed_records(rig, audit_log, settings):
    """Records whose integrity failures raise a security event, as bootstrap wires them."""
    events = SqlSecurityEvents(settings=AlertsSettings(), clock=rig.clock)
    return SqlRecords(
        keys=rig.keyring,
        audit_log=audit_log,
        clock=rig.clock,
        settings=settings,
        on_tamper=TamperAlarm(uow=rig.uow, events=events),
    )


def test_a_ciphertext_moved_to_another_record_or_tenant_does_not_open(
    acme, globex, rig, alarmed_records, engine
):
    records = alarmed_records
    _collection(acme, records)
    _collection(acme, records, name="other")
    _collection(globex, records)
    source = _create(acme, records, {"secret": "a"})
    same_collection = _create(acme, records, {"secret": "b"})
    other_collection = _create(acme, records, {"secret": "c"}, collection="other")
    other_tenant = _create(globex, records, {"secret": "d"})
    with engine.begin() as connection:
        sealed = connection.execute(
            select(RecordRow.sealed).where(RecordRow.id == source.id)
        ).scalar_one()
        for target in (same_collection, other_collection, other_tenant):
            connection.execute(
                update(RecordRow).where(RecordRow.id == target.id).values(sealed=sealed)
            )
    cases = [
        (acme, same_collection.id, "notes"),
        (acme, other_collection.id, "other"),
        (globex, other_tenant.id, "notes"),
    ]
    for tenant, record_id, collection in cases:
        with pytest.raises(RecordIntegrityError) as raised:
            _read(tenant, records, record_id, collection=collection)
        assert record_id in raised.value.detail
        assert repr(collection) in raised.value.detail
        assert raised.value.details == {"collection": collection, "record_id": record_id}
    assert _read(acme, records, source.id).data == {"secret": "a"}
    # Each failure raised a HIGH security event for the tenant, though the request rolled back.
    with rig.uow.begin() as session:
        alarms = session.execute(
            select(
                SecurityEventRow.tenant_id, SecurityEventRow.subject, SecurityEventRow.severity
            ).where(SecurityEventRow.type == "records.integrity_failed")
        ).all()
    assert sorted(alarms) == sorted(
        (tenant.tenant_id, f"{collection}/{record_id}", Severity.HIGH)
        for tenant, record_id, collection in cases
    )


def test_rotating_the_tenant_key_reencrypts_every_record(acme, records, rig, engine):
    _collection(acme, records)
    made = [_create(acme, records, {"secret": f"s{i}"}) for i in range(3)]
    acme.run(records.delete, "notes", made[2].id, if_match=None, client=CLIENT)
    target = RecordsReencryptionTarget(engine=engine)
    assert target.count_sealed_with(acme.tenant_id, 1) == 3  # retirement would be refused
    rotated = rig.keyring.rotate(acme.tenant_id)
    reports = {r.target: r for r in rig.keyring.reencrypt(acme.tenant_id)}
    assert reports["records"].finished
    assert reports["records"].rows_reencrypted == 3  # the soft-deleted one too: it still holds data
    assert target.count_sealed_with(acme.tenant_id, 1) == 0
    assert target.count_sealed_with(acme.tenant_id, rotated.version) == 3
    for record in made[:2]:
        read = _read(acme, records, record.id)
        assert read.data == record.data
        assert read.etag == record.etag  # re-encryption is not a change of the document
    page = acme.run(
        records.page, "notes", filters={"secret": "s0"}, after=None, limit=5, client=CLIENT
    ).page
    assert [r.id for r in page.items] == [made[0].id]  # blind indexes survive rotation


@pytest.mark.usefixtures("engine")
def test_deleted_records_are_purged_after_the_grace_period(acme, records, rig, audit_log, settings):
    _collection(acme, records)
    kept = _create(acme, records, {"secret": "kept"})
    gone = _create(acme, records, {"secret": "gone"})
    acme.run(records.delete, "notes", gone.id, if_match=None, client=CLIENT)
    with pytest.raises(RecordNotFound):
        _read(acme, records, gone.id)
    grace = timedelta(seconds=settings.purge_grace_seconds)

    def purge():
        return purge_expired(uow=rig.uow, audit_log=audit_log, clock=rig.clock, grace=grace)

    assert purge() == 0  # within the grace period the row stays
    rig.advance(seconds=settings.purge_grace_seconds + 1)
    assert purge() == 1
    assert purge() == 0  # idempotent
    with rig.uow.begin() as session:
        ids = set(session.scalars(select(RecordRow.id)))
    assert ids == {kept.id}
    with rig.uow.begin() as session:
        events = (
            AuditQuery(audit_log=audit_log)
            .search(session, tenant_id=acme.tenant_id, filters=AuditFilter(action="records.purged"))
            .items
        )
    assert [e.details["count"] for e in events] == [1]


def test_concurrent_writers_with_a_stale_etag_get_412_and_no_update_is_lost(acme, records):
    _collection(acme, records, indexed=())
    created = _create(acme, records, {"count": 0})
    writers = 4
    start = threading.Barrier(writers)
    outcomes = []

    def stale_write(n):
        start.wait()
        try:
            acme.run(
                records.replace,
                "notes",
                created.id,
                document={"count": 0, "by": n},
                if_match=created.etag,
                client=CLIENT,
            )
            outcomes.append("ok")
        except VersionMismatch:
            outcomes.append("412")

    threads = [threading.Thread(target=stale_write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["412"] * (writers - 1) + ["ok"]

    increments = 3
    errors = []

    def increment():
        done = 0
        while done < increments:
            current = _read(acme, records, created.id)
            try:
                acme.run(
                    records.patch,
                    "notes",
                    created.id,
                    patch={"count": current.data["count"] + 1},
                    if_match=current.etag,
                    client=CLIENT,
                )
                done += 1
            except VersionMismatch:
                continue  # someone else won this round: read again
            except Exception as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=increment) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _read(acme, records, created.id).data["count"] == writers * increments
