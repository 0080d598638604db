"""Migration 0015: existing rows get their hashed entry, verify as before, and come back down."""

# Hand-written SQL from test constants: the rows a 0014 database holds.
# ruff: noqa: S608

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from bastion.audit import AuditVerifier, Keys
from bastion.audit.canonical import GENESIS_HASH, SYSTEM_CHAIN, chain_hash, entry_text
from bastion.db import make_engine
from bastion.db.schema import SCRIPT_LOCATION
from tests.integration.audit.conftest import TENANT
from tests.support.audit import tamper

OLD_COLUMNS = (
    "chain_id", "seq", "occurred_at", "tenant_id", "actor", "action", "target", "outcome",
    "source_ip", "user_agent", "request_id", "details", "prev_hash", "hash",
)  # fmt: skip


def _migrate(engine, action, revision):
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def _old_rows():
    """Rows as versions up to 0014 wrote them, hashed with the version-1 encoder."""
    rows = []
    for chain, tenant in ((TENANT, TENANT), (SYSTEM_CHAIN, None)):
        prev = GENESIS_HASH
        for seq in range(1, 6):
            fields = {
                "time": f"2026-11-22T09:00:0{seq}.000000Z",
                "tenant": tenant,
                "actor": None if seq == 2 else f"act_{seq:032x}",
                "action": "record.updated",
                "target": None if seq == 3 else f'record:"{seq}"\n',
                "outcome": "success",
                "source_ip": "203.0.113.7",
                "user_agent": "Mozilla/5.0 ünïcödé ☕",
                "request_id": None,
                "details_json": '{"a":[1,null,true],"note":"caf\\u00e9? no: café \\\\ \\u001f"}',
            }
            entry = entry_text(chain=chain, seq=seq, **fields)
            digest = chain_hash(prev, entry.encode())
            rows.append(
                (
                    chain, seq, fields["time"], tenant, fields["actor"], fields["action"],
                    fields["target"], fields["outcome"], fields["source_ip"],
                    fields["user_agent"], fields["request_id"], fields["details_json"], prev,
                    digest,
                )
            )  # fmt: skip
            prev = digest
    return rows


def _insert_old(engine, rows):
    names = ", ".join(OLD_COLUMNS)
    marks = ", ".join(f":{name}" for name in OLD_COLUMNS)
    with engine.begin() as connection:
        for chain in {row[0] for row in rows}:
            connection.execute(
                text("INSERT INTO audit_chain_heads VALUES (:c, 0, :g)"),
                {"c": chain, "g": GENESIS_HASH},
            )
        connection.execute(
            text(f"INSERT INTO audit_events ({names}) VALUES ({marks})"),
            [dict(zip(OLD_COLUMNS, row, strict=True)) for row in rows],
        )


def _selected(engine):
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(f"SELECT {', '.join(OLD_COLUMNS)} FROM audit_events ORDER BY chain_id, seq")
            )
        ]


@pytest.fixture
def old_database(database_url):
    engine = make_engine(database_url, create=True)
    _migrate(engine, command.upgrade, "0014")
    yield engine
    engine.dispose()


def test_existing_rows_get_their_entry_verify_and_survive_a_round_trip(old_database):
    engine = old_database
    rows = _old_rows()
    _insert_old(engine, rows)
    expected = sorted(rows)

    _migrate(engine, command.upgrade, "0015")
    assert _selected(engine) == expected  # every column reads as before, now derived
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT entry FROM audit_events WHERE chain_id = :c AND seq = 3"), {"c": TENANT}
        ).scalar_one()
    assert '"target":null' in stored
    assert stored.startswith('{"action":"record.updated"')
    assert stored.endswith(',"v":1}')
    report = AuditVerifier(engine=engine, keys=Keys(), checkpoint_dir=None).verify()
    assert report.ok, report
    assert {(c.chain, c.entries_checked) for c in report.chains} == {
        (SYSTEM_CHAIN, 5),
        (TENANT, 5),
    }

    _migrate(engine, command.downgrade, "0014")
    assert _selected(engine) == expected
    with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events"))

    _migrate(engine, command.upgrade, "0015")
    assert _selected(engine) == expected
    assert AuditVerifier(engine=engine, keys=Keys(), checkpoint_dir=None).verify().ok
    with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events"))


def test_an_edited_row_stops_the_migration_and_nothing_changes(old_database):
    engine = old_database
    _insert_old(engine, _old_rows())
    tamper(
        engine, f"UPDATE audit_events SET action = 'forged' WHERE chain_id = '{TENANT}' AND seq = 4"
    )
    before = _selected(engine)
    with pytest.raises(RuntimeError, match=f"{TENANT}/4 does not match its hash"):
        _migrate(engine, command.upgrade, "0015")
    assert _selected(engine) == before
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0014"
