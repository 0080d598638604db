"""Chain verification: walk a chain, check it against its head and signed checkpoints, and name
the first bad sequence number and the kind of damage.

The same walk serves the database (``AuditVerifier``) and an exported file (``offline``). Damage
kinds and how each is recognised:

``edited``       the row links to its predecessor but its content no longer matches its hash
``deleted``      a sequence number is missing (or later rows were renumbered to close the gap)
``inserted``     an extra row: a repeated number, a row beyond the recorded head, or rows pushed
                 up by one that still verify under their old number
``swapped``      a row that verifies only under another sequence number, its place taken by another
``truncated``    the head row, a checkpoint or the export header records more rows than exist
``recomputed``   every hash is consistent but differs from one pinned by a signed checkpoint: the
                 chain was rewritten after an edit (the named row is the first whose hash changed)
``bad_checkpoint`` a checkpoint whose signature, key or entry list does not verify
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from bastion.audit.canonical import (
    GENESIS_HASH,
    checkpoint_message,
    entries_digest,
)

PROGRESS_EVERY_ROWS: Final = 2_000

# (seq, entry as UTF-8 bytes, prev_hash, hash): the rows repository.stream_entries yields.
StoredEntry = tuple[int, bytes, str, str]
SignatureVerifier = Callable[[bytes, bytes, bytes], bool]
"""``(public_key, message, signature) -> valid``: Ed25519 verification, supplied by crypto."""
Progress = Callable[[str, int, int], None]
"""``(chain, entries done, entries total)``."""


class DamageKind(enum.StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    SWAPPED = "swapped"
    TRUNCATED = "truncated"
    RECOMPUTED = "recomputed"
    BAD_CHECKPOINT = "bad_checkpoint"


@dataclass(frozen=True, slots=True)
class Damage:
    kind: DamageKind
    seq: int
    detail: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """One chain's verdict. ``signed_through_seq``: highest seq a valid signature vouches for."""

    chain: str
    entries_checked: int
    last_seq: int
    checkpoints_checked: int
    signed_through_seq: int
    signatures_checked: bool
    damage: Damage | None = None

    @property
    def ok(self) -> bool:
        return self.damage is None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chains: tuple[ChainReport, ...]

    @property
    def ok(self) -> bool:
        return all(chain.ok for chain in self.chains)

    @property
    def damaged(self) -> tuple[ChainReport, ...]:
        return tuple(chain for chain in self.chains if not chain.ok)


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A checkpoint as found in the database, an export line or an exported file (``source``)."""

    chain: str
    seq: int
    head_hash: str
    time: str
    prev_seq: int
    entries_digest: str
    key_id: str
    signature: bytes
    source: str
    entry_hashes: tuple[str, ...] | None = None

    def message(self) -> bytes:
        return checkpoint_message(
            chain=self.chain,
            seq=self.seq,
            head_hash=self.head_hash,
            time=self.time,
            prev_seq=self.prev_seq,
            entries_digest=self.entries_digest,
            key_id=self.key_id,
        )


@dataclass(frozen=True, slots=True)
class Keys:
    """Public keys by key id, and the function that checks a signature. Empty: unchecked."""

    public_keys: Mapping[str, bytes] = field(default_factory=dict)
    verify_signature: SignatureVerifier | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.public_keys) and self.verify_signature is not None


def hash_entry(canonical: bytes, *, prev_hash: str) -> str | None:
    """``hex(SHA-256(raw32(prev_hash) || canonical))``; None if a cell cannot be hashed."""
    try:
        return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()
    except (ValueError, TypeError):  # tampered cells: non-hex prev_hash, NULL or non-bytes entry
        return None


def claimed_position(canonical: bytes) -> tuple[object, object]:
    """The (chain, seq) an entry names inside its hashed text; (None, None) if unreadable."""
    try:
        document = json.loads(canonical)
    except (TypeError, ValueError, RecursionError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    return document.get("chain"), document.get("seq")


@dataclass(slots=True)
class WalkResult:
    last_seq: int
    last_hash: str
    checked: int
    damage: Damage | None = None
    first_unpinned: Damage | None = None


def in_batches(
    rows: Iterable[StoredEntry], size: int = PROGRESS_EVERY_ROWS
) -> Iterator[list[StoredEntry]]:
    """``rows`` as lists of up to ``size``, for ``walk_batches``."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def walk_chain(
    chain: str,
    entries: Iterable[StoredEntry],
    *,
    start_seq: int = 1,
    start_prev: str = GENESIS_HASH,
    pinned: Mapping[int, str] | None = None,
    progress: Progress | None = None,
    total: int = 0,
) -> WalkResult:
    """``walk_batches`` over rows one at a time (an export file, a test's list)."""
    return walk_batches(
        chain,
        in_batches(entries),
        start_seq=start_seq,
        start_prev=start_prev,
        pinned=pinned,
        progress=progress,
        total=total,
    )


def walk_batches(  # noqa: PLR0912 - the hot loop is kept in one frame on purpose
    chain: str,
    batches: Iterable[Sequence[StoredEntry]],
    *,
    start_seq: int = 1,
    start_prev: str = GENESIS_HASH,
    pinned: Mapping[int, str] | None = None,
    progress: Progress | None = None,
    total: int = 0,
) -> WalkResult:
    """Recompute the chain from ``start_seq``; stop at the first damage and classify it.

    ``batches`` are consecutive lists of rows in sequence order (the database's fetch batches);
    ``progress`` is called after each. ``pinned`` maps sequence numbers to hashes vouched for by
    signed checkpoints; the first difference is kept as a ``recomputed`` finding, the walk goes
    on looking for plain damage.

    Position binding: each entry names its chain and seq inside the hashed text, while the walk
    follows the key columns. The first row walked must name (``chain``, ``start_seq``); every
    later row is bound to its place by its link, since an entry Bastion wrote links only to its
    own predecessor. A row whose entry names another place cannot link there unless its hash
    was forged, which the checkpoints catch as for any forged row.
    """
    pins = pinned or {}
    pin_order = iter(sorted(seq for seq in pins if seq >= start_seq))
    next_pin = next(pin_order, None)
    first_unpinned: Damage | None = None
    damage: Damage | None = None
    first: StoredEntry | None = None
    prev, expected = start_prev, start_seq
    sha256 = hashlib.sha256
    try:
        prev_raw = bytes.fromhex(start_prev)
    except ValueError:
        prev_raw = b""
    remaining = iter(batches)
    for batch in remaining:
        if first is None and batch:
            first = batch[0]
        base = expected
        # The hot loop: per row one concatenation, one SHA-256, one hex and three comparisons,
        # nothing decoded or re-encoded; progress and look-ahead are per batch.
        for seq, canonical, prev_hash, row_hash in batch:
            if seq != expected:
                break
            try:
                digest = sha256(prev_raw + canonical).digest()
            except TypeError:  # a NULL or non-bytes entry cell
                digest = b""
            if prev_hash != prev or digest.hex() != row_hash:
                break
            if seq == next_pin:
                if pins[seq] != row_hash and first_unpinned is None:
                    first_unpinned = Damage(
                        DamageKind.RECOMPUTED,
                        seq,
                        f"hash of row {seq} differs from the one a signed checkpoint recorded: "
                        "the chain was rewritten from here on",
                    )
                next_pin = next(pin_order, None)
            prev, prev_raw = row_hash, digest
            expected += 1
        else:
            if progress is not None:
                progress(chain, expected - start_seq, total)
            continue
        # The row after is read only now: no look-ahead cost on the healthy path.
        index = expected - base
        following = batch[index + 1] if index + 1 < len(batch) else _first_of(remaining)
        damage = _damage_at(
            chain,
            batch[index],
            following=following,
            prev=prev,
            expected=expected,
            start_seq=start_seq,
        )
        break
    if first is not None and expected > start_seq:
        named = claimed_position(first[1])
        if named != (chain, start_seq):
            detail = f"row {start_seq} holds an entry that names {named}, not {(chain, start_seq)}"
            damage = Damage(DamageKind.EDITED, start_seq, detail)
    return WalkResult(
        last_seq=expected - 1,
        last_hash=prev,
        checked=expected - start_seq,
        damage=damage,
        first_unpinned=first_unpinned,
    )


def _first_of(batches: Iterator[Sequence[StoredEntry]]) -> StoredEntry | None:
    for batch in batches:
        if batch:
            return batch[0]
    return None


def _damage_at(
    chain: str,
    entry: StoredEntry,
    *,
    following: StoredEntry | None,
    prev: str,
    expected: int,
    start_seq: int,
) -> Damage:
    seq = entry[0]
    if seq > expected:
        detail = f"sequence jumps from {expected - 1} to {seq}: rows were deleted"
        return Damage(DamageKind.DELETED, expected, detail)
    if seq < expected:
        return Damage(DamageKind.INSERTED, seq, f"sequence number {seq} appears twice")
    return _classify(chain, entry, following, prev, start_seq)


def _classify(  # noqa: PLR0911 - one return per damage kind reads best
    chain: str,
    entry: StoredEntry,
    following: StoredEntry | None,
    prev: str,
    start_seq: int,
) -> Damage:
    seq, prev_hash, row_hash = entry[0], entry[2], entry[3]

    def verifies(row: StoredEntry | None, as_seq: int, after: str) -> bool:
        """``row`` is the entry Bastion wrote at ``as_seq``, right after ``after``."""
        return (
            row is not None
            and row[2] == after
            and hash_entry(row[1], prev_hash=after) == row[3]
            and claimed_position(row[1]) == (chain, as_seq)
        )

    if following is not None and following[0] == seq + 1 and verifies(following, seq, prev):
        if verifies(entry, seq + 1, following[3]):
            return Damage(DamageKind.SWAPPED, seq, f"rows {seq} and {seq + 1} were swapped")
        return Damage(DamageKind.INSERTED, seq, f"row {seq} was inserted; later rows renumbered")
    original = _original_seq(chain, entry)
    if original is not None and original > seq:
        shift = original - seq
        if following is None or verifies(following, following[0] + shift, row_hash):
            detail = f"{shift} row(s) deleted at {seq} and later rows renumbered to hide the gap"
            return Damage(DamageKind.DELETED, seq, detail)
        return Damage(DamageKind.SWAPPED, seq, f"row {original} was moved to {seq}")
    if original is not None and original < seq:
        detail = f"row(s) inserted at {original}; the original row {original} now sits at {seq}"
        return Damage(DamageKind.INSERTED, original, detail)
    self_consistent = original == seq
    if prev_hash != prev and self_consistent and seq > start_seq:
        detail = f"row {seq - 1} was changed and its hash recomputed; row {seq} no longer links"
        return Damage(DamageKind.EDITED, seq - 1, detail)
    if prev_hash == prev:
        return Damage(DamageKind.EDITED, seq, f"row {seq} was changed after it was written")
    return Damage(DamageKind.EDITED, seq, f"row {seq} does not match its hash or link")


def _original_seq(chain: str, entry: StoredEntry) -> int | None:
    """The seq ``entry`` was written at, if it still matches its own hash; else None."""
    if hash_entry(entry[1], prev_hash=entry[2]) != entry[3]:
        return None
    claimed_chain, claimed_seq = claimed_position(entry[1])
    if claimed_chain != chain or not isinstance(claimed_seq, int) or claimed_seq < 1:
        return None
    return claimed_seq


@dataclass(slots=True)
class CheckpointFindings:
    pinned: dict[int, str]
    damage: list[Damage]
    valid: list[CheckpointRecord]
    checked: int = 0


def check_checkpoints(records: Sequence[CheckpointRecord], keys: Keys) -> CheckpointFindings:
    """Verify each checkpoint on its own (signature, key, entry list) and collect the pins."""
    findings = CheckpointFindings(pinned={}, damage=[], valid=[])
    for record in records:
        findings.checked += 1
        problem = _checkpoint_problem(record, keys)
        if problem is not None:
            findings.damage.append(
                Damage(DamageKind.BAD_CHECKPOINT, record.seq, f"{record.source}: {problem}")
            )
            continue
        findings.valid.append(record)
        findings.pinned[record.seq] = record.head_hash
        if record.entry_hashes is not None:
            for offset, value in enumerate(record.entry_hashes, start=record.prev_seq + 1):
                findings.pinned.setdefault(offset, value)
    return findings


def _checkpoint_problem(record: CheckpointRecord, keys: Keys) -> str | None:
    if keys.enabled and keys.verify_signature is not None:
        public_key = keys.public_keys.get(record.key_id)
        if public_key is None:
            return f"signed by unknown key {record.key_id}"
        if not keys.verify_signature(public_key, record.message(), record.signature):
            return "signature does not verify"
    if record.entry_hashes is not None:
        listed = record.entry_hashes
        if (
            len(listed) != record.seq - record.prev_seq
            or (listed and listed[-1] != record.head_hash)
            or entries_digest(listed) != record.entries_digest
        ):
            return "entry hash list does not match the signed digest"
    return None


def judge_chain(
    chain: str,
    walk: WalkResult,
    findings: CheckpointFindings,
    *,
    recorded_head: tuple[int, str] | None,
    keys: Keys,
) -> ChainReport:
    """Combine the walk, the checkpoints and the recorded head into one verdict (lowest seq)."""
    candidates = list(findings.damage)
    if walk.damage is not None:
        candidates.append(_beyond_head(walk.damage, recorded_head))
    if walk.first_unpinned is not None:
        candidates.append(walk.first_unpinned)
    complete = walk.damage is None
    signed_through = 0
    for record in findings.valid:
        if complete and record.seq > walk.last_seq:
            candidates.append(
                Damage(
                    DamageKind.TRUNCATED,
                    walk.last_seq + 1,
                    f"{record.source} records {record.seq} rows, only {walk.last_seq} remain",
                )
            )
        elif record.seq <= walk.last_seq and keys.enabled:
            signed_through = max(signed_through, record.seq)
    if complete and recorded_head is not None:
        candidates.extend(_head_damage(walk, recorded_head))
    damage = min(candidates, key=_damage_order) if candidates else None
    if walk.first_unpinned is not None:
        signed_through = min(signed_through, walk.first_unpinned.seq - 1)
    return ChainReport(
        chain=chain,
        entries_checked=walk.checked,
        last_seq=walk.last_seq,
        checkpoints_checked=findings.checked,
        signed_through_seq=signed_through,
        signatures_checked=keys.enabled,
        damage=damage,
    )


def _beyond_head(damage: Damage, recorded_head: tuple[int, str] | None) -> Damage:
    # A bad row past the recorded head was never appended through the log: call it inserted.
    if recorded_head is None or damage.seq <= recorded_head[0]:
        return damage
    head_seq = recorded_head[0]
    detail = f"rows after the recorded head ({head_seq}) were added outside the audit log"
    return Damage(DamageKind.INSERTED, head_seq + 1, detail)


def _head_damage(walk: WalkResult, recorded: tuple[int, str]) -> list[Damage]:
    head_seq, head_hash = recorded
    if head_seq > walk.last_seq:
        detail = f"the chain head records {head_seq} rows, only {walk.last_seq} remain"
        return [Damage(DamageKind.TRUNCATED, walk.last_seq + 1, detail)]
    if head_seq < walk.last_seq:
        detail = f"rows after the recorded head ({head_seq}) were added outside the audit log"
        return [Damage(DamageKind.INSERTED, head_seq + 1, detail)]
    if head_hash != walk.last_hash:
        detail = f"row {head_seq} differs from the hash the chain head recorded"
        return [Damage(DamageKind.EDITED, head_seq, detail)]
    return []


# Walk findings win ties: they say what happened to the row; the others only that it differs.
_KIND_RANK: Final = {kind: rank for rank, kind in enumerate(DamageKind)}


def _damage_order(damage: Damage) -> tuple[int, int]:
    return damage.seq, _KIND_RANK[damage.kind]
