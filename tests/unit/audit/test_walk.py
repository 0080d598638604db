"""The chain walk on in-memory rows: each kind of damage is named at the right place."""

from __future__ import annotations

import pytest

from bastion.audit.canonical import GENESIS_HASH
from bastion.audit.verify import (
    CheckpointFindings,
    DamageKind,
    Keys,
    hash_entry,
    judge_chain,
    walk_chain,
)

CHAIN = "tenant-a"


def build(count):
    rows, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        partial = (
            seq, f"2026-01-01T00:00:{seq:02d}.000000Z", CHAIN, "act_x", "record.updated",
            f"r:{seq}", "success", None, None, None, f'{{"n":{seq}}}', prev, "",
        )  # fmt: skip
        digest = hash_entry(CHAIN, partial, seq=seq, prev_hash=prev)
        rows.append((*partial[:12], digest))
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
    report = verdict(rows, head=(20, rows[-1][12]))
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
    garbage = (7, *rows[6][1:11], "not-a-hash", "ff" * 32)
    shifted = rows[:6] + [garbage] + [renumbered(r, r[0] + 1) for r in rows[6:]]
    damage = verdict(shifted).damage
    assert (damage.kind, damage.seq) == (DamageKind.INSERTED, 7)


def test_a_null_in_a_required_cell_is_an_edit_not_a_crash():
    rows = build(5)
    rows[2] = (*rows[2][:4], None, *rows[2][5:])
    damage = verdict(rows).damage
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 3)


def test_the_first_row_must_start_from_the_genesis_hash():
    rows = build(3)
    rows[0] = (*rows[0][:11], "ab" * 32, rows[0][12])
    damage = verdict(rows).damage
    assert (damage.kind, damage.seq) == (DamageKind.EDITED, 1)
