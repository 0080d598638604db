"""The chain walk on in-memory rows: each kind of damage is named at the right place."""

from __future__ import annotations

import pytest

from bastion.audit.canonical import GENESIS_HASH, entry_bytes
from bastion.audit.verify import (
    CheckpointFindings,
    DamageKind,
    Keys,
    hash_entry,
    judge_chain,
    walk_chain,
)

CHAIN = "tenant-a"


def build(count, chain=CHAIN, first=1):
    """Rows (seq, entry bytes, prev_hash, hash) as the repository streams them."""
    rows, prev = [], GENESIS_HASH
    for seq in range(first, first + count):
        canonical = entry_bytes(
            chain=chain,
            seq=seq,
            time=f"2026-01-01T00:00:{seq % 60:02d}.000000Z",
            tenant=chain,
            actor="act_x",
            action="record.updated",
            target=f"r:{seq}",
            outcome="success",
            source_ip=None,
            user_agent=None,
            request_id=None,
            details_json=f'{{"n":{seq}}}',
        )
        digest = hash_entry(canonical, prev_hash=prev)
        rows.append((seq, canonical, prev, digest))
        prev = digest
    return rows


def renumbered(row, seq):
    return (seq, *row[1:])


def verdict(rows, head=None):
    walk = walk_chain(CHAIN, rows)
    findings = CheckpointFindings(pinned={}, damage=[], valid=[])
    return judge_chain(CHAIN, walk, findings, recorded_head=head, keys=Keys())


def test_a_healthy_chain_is_ok():
    rows = build(20)
    report = verdict(rows, head=(20, rows[-1][3]))
    assert report.ok
    assert (report.entries_checked, report.last_seq) == (20, 20)


def test_a_non_adjacent_swap_is_named():
    rows = build(20)
    rows[4], rows[9] = renumbered(rows[9], 5), renumbered(rows[4], 10)
    damage = verdict(rows).damage
    assert (damage.kind, damage.seq) == (DamageKind.SWAPPED, 5)


@pytest.mark.parametrize("removed", [1, 3])
def test_rows_deleted_and_renumbered_are_named(removed):
    rows = build(20)
    kept = rows[:6] + [renumbered(r, r[0] - removed) for r in rows[6 + removed :]]
    damage = verdict(kept).damage
    assert (damage.kind, damage.seq) == (DamageKind.DELETED, 7)


def test_a_garbage_row_inserted_with_renumbering_is_named():
    rows = build(20)
    garbage = (7, rows[6][1], "not-a-hash", "ff" * 32)
    shifted = rows[:6] + [garbage] + [renumbered(r, r[0] + 1) for r in rows[6:]]
    damage = verdict(shifted).damage
    assert (damage.kind, damage.seq) == (DamageKind.INSERTED, 7)


def test_a_null_in_a_required_cell_is_an_edit_not_a_crash():
    rows = build(5)
    rows[2] = (rows[2][0], None, *rows[2][2:])
    damage = verdict(rows).damage
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 3)


def test_the_first_row_must_start_from_the_genesis_hash():
    rows = build(3)
    rows[0] = (rows[0][0], rows[0][1], "ab" * 32, rows[0][3])
    damage = verdict(rows).damage
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 1)


def test_another_chain_copied_in_whole_is_named_at_its_first_row():
    # Every link holds (it is a genuine chain), but its entries name another chain.
    damage = verdict(build(5, chain="tenant-b")).damage
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 1)
    assert "tenant-b" in damage.detail


def test_an_incremental_walk_checks_the_position_its_first_row_names():
    rows = build(10)
    later = walk_chain(CHAIN, rows[4:], start_seq=5, start_prev=rows[3][3])
    assert later.damage is None
    assert (later.checked, later.last_seq) == (6, 10)
    # Rows of positions 1.. renumbered as 5..: they link from row 4's hash only if forged,
    # and the first one names position 1.
    forged = build(3, first=1)
    moved = [(5 + i, r[1], r[2], r[3]) for i, r in enumerate(forged)]
    walk = walk_chain(CHAIN, moved, start_seq=5, start_prev=GENESIS_HASH)
    assert (walk.damage.kind, walk.damage.seq) == (DamageKind.EDITED, 5)


def test_a_row_moved_far_from_its_place_is_still_recognised():
    rows = build(60)
    rows[4], rows[49] = renumbered(rows[49], 5), renumbered(rows[4], 50)
    damage = verdict(rows).damage
    assert (damage.kind, damage.seq) == (DamageKind.SWAPPED, 5)
    assert "row 50 was moved to 5" in damage.detail
