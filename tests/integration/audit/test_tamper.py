"""Tampering with the database directly, as a database administrator could: the verifier names
the first bad sequence number and the kind of damage, on SQLite and PostgreSQL."""

# Hand-written SQL from test constants is the subject here (an administrator's tampering).
# ruff: noqa: S608

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bastion.audit import DamageKind
from bastion.audit.canonical import GENESIS_HASH
from bastion.audit.derived import DERIVED
from bastion.audit.repository import stream_entries
from bastion.audit.verify import hash_entry
from tests.integration.audit.conftest import TENANT, append_many
from tests.support.audit import tamper

EVENTS = 30
WHERE = f"chain_id = '{TENANT}'"


@pytest.fixture
def chain(engine, audit_log, checkpointer):
    """30 events with signed checkpoints at 10, 20 and 30, exported to files."""
    append_many(engine, audit_log, EVENTS, checkpointer=checkpointer)
    return TENANT


def the_damage(verifier):
    report = verifier.verify()
    damaged = report.damaged
    assert len(damaged) == 1, report
    assert damaged[0].chain == TENANT
    return damaged[0].damage


def renumber(engine, *, from_seq, by):
    """Shift every seq >= from_seq by ``by`` in two steps, so the primary key never collides."""
    tamper(
        engine,
        f"UPDATE audit_events SET seq = -seq WHERE {WHERE} AND seq >= {from_seq}",
        f"UPDATE audit_events SET seq = -seq + ({by}) WHERE {WHERE} AND seq < 0",
    )


def recompute_from(engine, seq):
    """Rewrite every hash from ``seq`` on, and the head, so the chain is consistent again."""
    with engine.connect() as connection:
        rows = list(stream_entries(connection, TENANT))
    prev = GENESIS_HASH
    statements = []
    for row in rows:
        if row[0] >= seq:
            new = hash_entry(row[1], prev_hash=prev)
            statements.append(
                f"UPDATE audit_events SET prev_hash = '{prev}', hash = '{new}' "
                f"WHERE {WHERE} AND seq = {row[0]}"
            )
            prev = new
        else:
            prev = row[3]
    statements.append(f"UPDATE audit_chain_heads SET last_hash = '{prev}' WHERE {WHERE}")
    tamper(engine, *statements)


def edit_entry(engine, seq, old, new, **also):
    """Replace ``old`` by ``new`` in the stored entry of row ``seq`` (the hashed text)."""
    sets = "".join(f", {column} = '{value}'" for column, value in also.items())
    tamper(
        engine,
        f"UPDATE audit_events SET entry = replace(entry, :old, :new){sets} "
        f"WHERE {WHERE} AND seq = {seq}",
        old=old,
        new=new,
    )


def make_derived_columns_plain(engine):
    """What an administrator able to change the schema could do: turn the generated query
    columns into plain, writable ones (keeping their values)."""
    columns = [column for column, _, _, _ in DERIVED]
    if engine.dialect.name == "postgresql":
        drops = ", ".join(f"ALTER COLUMN {column} DROP EXPRESSION" for column in columns)
        tamper(engine, f"ALTER TABLE audit_events {drops}")
        return
    listed = ", ".join(columns)
    tamper(
        engine,
        "CREATE TABLE audit_events_plain (chain_id VARCHAR(36) NOT NULL, seq BIGINT NOT NULL, "
        "entry TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL, "
        f"{listed}, PRIMARY KEY (chain_id, seq))",
        "INSERT INTO audit_events_plain SELECT chain_id, seq, entry, prev_hash, hash, "
        f"{listed} FROM audit_events",
        "DROP TABLE audit_events",
        "ALTER TABLE audit_events_plain RENAME TO audit_events",
    )


def entry_of(engine, seq):
    with engine.connect() as connection:
        return next(stream_entries(connection, TENANT, from_seq=seq, to_seq=seq))


def test_an_untouched_chain_verifies_with_its_signed_checkpoints(chain, verifier):
    report = verifier.verify()
    assert report.ok, report
    (only,) = report.chains
    assert (only.entries_checked, only.last_seq, only.signed_through_seq) == (30, 30, 30)
    assert only.signatures_checked
    assert only.checkpoints_checked == 6  # three in the database, three exported files


def test_an_edited_row_is_named(chain, engine, verifier):
    edit_entry(engine, 13, '"target":"record:13"', '"target":"record:forged"')
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 13)


def test_an_edited_details_member_is_named(chain, engine, verifier):
    edit_entry(engine, 2, '"number":2', '"number":1')
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 2)


def test_the_query_columns_cannot_be_edited_apart_from_the_entry(chain, engine):
    # They are generated from the hashed entry: the database itself refuses the UPDATE, even
    # with the append-only triggers out of the way.
    with pytest.raises(DBAPIError, match="generated"):
        tamper(engine, f"UPDATE audit_events SET target = 'forged' WHERE {WHERE} AND seq = 13")
    with engine.connect() as connection:
        target = connection.scalar(
            text(f"SELECT target FROM audit_events WHERE {WHERE} AND seq = 13")
        )
    assert target == "record:13"


def test_a_query_column_redefined_as_plain_and_edited_is_named(chain, engine, verifier):
    make_derived_columns_plain(engine)
    assert verifier.verify().ok  # redefined, but every value still equals its entry
    tamper(engine, f"UPDATE audit_events SET target = 'record:forged' WHERE {WHERE} AND seq = 13")
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 13)
    assert "columns of row 13" in damage.detail


def test_an_edited_row_whose_own_hash_was_recomputed_is_named(chain, engine, verifier):
    row = entry_of(engine, 13)
    forged = row[1].replace(b'"target":"record:13"', b'"target":"record:forged"')
    edit_entry(
        engine,
        13,
        '"target":"record:13"',
        '"target":"record:forged"',
        hash=hash_entry(forged, prev_hash=row[2]),
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 13)


def test_a_deleted_row_is_named(chain, engine, verifier):
    tamper(engine, f"DELETE FROM audit_events WHERE {WHERE} AND seq = 13")
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.DELETED, 13)


def test_a_deleted_row_hidden_by_renumbering_is_named(chain, engine, verifier):
    tamper(engine, f"DELETE FROM audit_events WHERE {WHERE} AND seq = 13")
    renumber(engine, from_seq=14, by=-1)
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.DELETED, 13)


def test_a_row_inserted_past_the_head_is_named(chain, engine, verifier):
    tamper(
        engine,
        "INSERT INTO audit_events (chain_id, seq, entry, prev_hash, hash) "
        "SELECT chain_id, 31, replace(entry, :old, :new), hash, prev_hash "
        f"FROM audit_events WHERE {WHERE} AND seq = 30",
        old='"seq":30',
        new='"seq":31',
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.INSERTED, 31)


def test_a_correctly_hashed_row_inserted_mid_chain_is_named(chain, engine, verifier):
    row12 = entry_of(engine, 12)
    renumber(engine, from_seq=13, by=1)
    forged = row12[1].replace(b'"seq":12', b'"seq":13').replace(b"record:12", b"record:forged")
    tamper(
        engine,
        "INSERT INTO audit_events (chain_id, seq, entry, prev_hash, hash) "
        "VALUES (:chain, 13, :entry, :prev, :hash)",
        chain=TENANT,
        entry=forged.decode(),
        prev=row12[3],
        hash=hash_entry(forged, prev_hash=row12[3]),
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.INSERTED, 13)


def test_swapped_rows_are_named(chain, engine, verifier):
    tamper(
        engine,
        f"UPDATE audit_events SET seq = -1 WHERE {WHERE} AND seq = 13",
        f"UPDATE audit_events SET seq = 13 WHERE {WHERE} AND seq = 14",
        f"UPDATE audit_events SET seq = 14 WHERE {WHERE} AND seq = -1",
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.SWAPPED, 13)


def test_a_truncated_tail_is_named_from_the_head_row(chain, engine, verifier):
    tamper(engine, f"DELETE FROM audit_events WHERE {WHERE} AND seq > 25")
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.TRUNCATED, 26)


def test_a_truncated_tail_with_head_and_checkpoints_rewritten_is_caught_by_the_files(
    chain, engine, verifier
):
    hash25 = entry_of(engine, 25)[3]
    tamper(
        engine,
        f"DELETE FROM audit_events WHERE {WHERE} AND seq > 25",
        f"UPDATE audit_chain_heads SET last_seq = 25, last_hash = '{hash25}' WHERE {WHERE}",
        f"DELETE FROM audit_checkpoints WHERE {WHERE} AND seq > 25",
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.TRUNCATED, 26)
    assert "audit-checkpoints" in damage.detail


def test_a_whole_chain_recomputed_after_an_edit_is_caught_by_the_exported_checkpoints(
    chain, engine, verifier
):
    edit_entry(engine, 13, '"target":"record:13"', '"target":"record:forged"')
    recompute_from(engine, 13)
    # The administrator also removes the database checkpoints they cannot re-sign.
    tamper(engine, f"DELETE FROM audit_checkpoints WHERE {WHERE}")
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.RECOMPUTED, 13)


def test_a_recomputed_chain_without_exported_files_is_still_caught_at_a_checkpoint(
    chain, engine, keyring
):
    from bastion.audit import AuditVerifier
    from tests.support.audit import keys_for

    edit_entry(engine, 13, '"target":"record:13"', '"target":"record:forged"')
    recompute_from(engine, 13)
    database_only = AuditVerifier(engine=engine, keys=keys_for(keyring), checkpoint_dir=None)
    damage = the_damage(database_only)
    # The database checkpoint pins only its head: the damage lies between 11 and 20.
    assert (damage.kind, damage.seq) == (DamageKind.RECOMPUTED, 20)


def test_a_forged_database_checkpoint_is_named(chain, engine, verifier):
    with engine.begin() as connection:
        connection.execute(
            text(
                f"UPDATE audit_checkpoints SET head_hash = '{'ab' * 32}' WHERE {WHERE} AND seq = 20"
            )
        )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.BAD_CHECKPOINT, 20)


def test_a_damaged_checkpoint_file_is_named(chain, checkpoint_dir, verifier):
    (checkpoint_dir / TENANT / f"{20:012d}.json").write_text("{not json")
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.BAD_CHECKPOINT, 20)


def test_verify_of_one_chain_ignores_the_others(chain, engine, audit_log, verifier):
    append_many(engine, audit_log, 3, tenant=None)
    tamper(engine, f"DELETE FROM audit_events WHERE {WHERE} AND seq = 5")
    assert verifier.verify("system").ok
    assert not verifier.verify(TENANT).ok


def test_an_incremental_check_from_a_sequence_number(chain, verifier):
    report = verifier.verify(TENANT, since=15)
    assert report.ok, report
    assert report.chains[0].entries_checked == 16
