"""Tampering with the database directly, as a database administrator could: the verifier names
the first bad sequence number and the kind of damage, on SQLite and PostgreSQL."""

# Hand-written SQL from test constants is the subject here (an administrator's tampering).
# ruff: noqa: S608

from __future__ import annotations

import pytest
from sqlalchemy import text

from bastion.audit import DamageKind
from bastion.audit.canonical import GENESIS_HASH
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
            new = hash_entry(TENANT, row, seq=row[0], prev_hash=prev)
            statements.append(
                f"UPDATE audit_events SET prev_hash = '{prev}', hash = '{new}' "
                f"WHERE {WHERE} AND seq = {row[0]}"
            )
            prev = new
        else:
            prev = row[12]
    statements.append(f"UPDATE audit_chain_heads SET last_hash = '{prev}' WHERE {WHERE}")
    tamper(engine, *statements)


def test_an_untouched_chain_verifies_with_its_signed_checkpoints(chain, verifier):
    report = verifier.verify()
    assert report.ok, report
    (only,) = report.chains
    assert (only.entries_checked, only.last_seq, only.signed_through_seq) == (30, 30, 30)
    assert only.signatures_checked
    assert only.checkpoints_checked == 6  # three in the database, three exported files


def test_an_edited_row_is_named(chain, engine, verifier):
    tamper(engine, f"UPDATE audit_events SET target = 'record:forged' WHERE {WHERE} AND seq = 13")
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 13)


def test_an_edited_details_cell_is_named(chain, engine, verifier):
    tamper(
        engine,
        f"UPDATE audit_events SET details = :details WHERE {WHERE} AND seq = 2",
        details='{"number":1}',
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 2)


def test_an_edited_row_whose_own_hash_was_recomputed_is_named(chain, engine, verifier):
    with engine.connect() as connection:
        row = list(stream_entries(connection, TENANT))[12]
    forged = (*row[:5], "record:forged", *row[6:])
    new_hash = hash_entry(TENANT, forged, seq=13, prev_hash=row[11])
    tamper(
        engine,
        f"UPDATE audit_events SET target = 'record:forged', hash = '{new_hash}' "
        f"WHERE {WHERE} AND seq = 13",
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
        "INSERT INTO audit_events (chain_id, seq, occurred_at, tenant_id, actor, action, target, "
        "outcome, source_ip, user_agent, request_id, details, prev_hash, hash) "
        "SELECT chain_id, 31, occurred_at, tenant_id, actor, action, 'record:forged', outcome, "
        "source_ip, user_agent, request_id, details, hash, prev_hash "
        f"FROM audit_events WHERE {WHERE} AND seq = 30",
    )
    damage = the_damage(verifier)
    assert (damage.kind, damage.seq) == (DamageKind.INSERTED, 31)


def test_a_correctly_hashed_row_inserted_mid_chain_is_named(chain, engine, verifier):
    with engine.connect() as connection:
        row12 = list(stream_entries(connection, TENANT))[11]
    renumber(engine, from_seq=13, by=1)
    forged = (13, *row12[1:5], "record:forged", *row12[6:11], row12[12], "")
    forged_hash = hash_entry(TENANT, forged, seq=13, prev_hash=row12[12])
    tamper(
        engine,
        "INSERT INTO audit_events (chain_id, seq, occurred_at, tenant_id, actor, action, target, "
        "outcome, source_ip, user_agent, request_id, details, prev_hash, hash) "
        "SELECT chain_id, 13, occurred_at, tenant_id, actor, action, 'record:forged', outcome, "
        f"source_ip, user_agent, request_id, details, hash, '{forged_hash}' "
        f"FROM audit_events WHERE {WHERE} AND seq = 12",
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
    with engine.connect() as connection:
        hash25 = list(stream_entries(connection, TENANT))[24][12]
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
    tamper(engine, f"UPDATE audit_events SET target = 'record:forged' WHERE {WHERE} AND seq = 13")
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

    tamper(engine, f"UPDATE audit_events SET target = 'record:forged' WHERE {WHERE} AND seq = 13")
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
