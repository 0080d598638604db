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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Final

from bastion.audit.canonical import (
    GENESIS_HASH,
    checkpoint_message,
    entries_digest,
    stored_entry_bytes,
)

# How far a moved row is searched for (only after damage is found, so the cost is bounded).
MOVED_ROW_WINDOW: Final = 16
PROGRESS_EVERY_ROWS: Final = 2_000

# (seq, time, tenant, actor, action, target, outcome, source_ip, user_agent, request_id,
#  details_json, prev_hash, hash): the column order of repository.ENTRY_COLUMNS.
StoredEntry = tuple[
    int, str, str | None, str | None, str, str | None, str, str | None, str | None, str | None,
    str, str, str,
]  # fmt: skip
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


def hash_entry(chain: str, entry: StoredEntry, *, seq: int, prev_hash: str) -> str | None:
    """The hash ``entry`` would have at ``seq`` after ``prev_hash``; None if unencodable."""
    try:
        canonical = stored_entry_bytes(encode_basestring(chain), entry, seq)
        return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()
    except (ValueError, TypeError):  # tampered cells: non-hex prev_hash, NULLs, bad Unicode
        return None


@dataclass(slots=True)
class WalkResult:
    last_seq: int
    last_hash: str
    checked: int
    damage: Damage | None = None
    first_unpinned: Damage | None = None


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
    """Recompute the chain from ``start_seq``; stop at the first damage and classify it.

    ``pinned`` maps sequence numbers to hashes vouched for by signed checkpoints; the first
    difference is kept as a ``recomputed`` finding, the walk goes on looking for plain damage.
    """
    pins = pinned or {}
    rows = iter(entries)
    result = WalkResult(last_seq=start_seq - 1, last_hash=start_prev, checked=0)
    prev, expected = start_prev, start_seq
    # The hot loop: the previous digest is kept as bytes and the chain id escaped once, so a row
    # costs one encode and one SHA-256 (the reason verification keeps up with the disk).
    chain_json = encode_basestring(chain)
    sha256 = hashlib.sha256
    try:
        prev_raw = bytes.fromhex(start_prev)
    except ValueError:
        prev_raw = b""
    for entry in rows:
        seq = entry[0]
        if seq != expected:
            if seq > expected:
                detail = f"sequence jumps from {expected - 1} to {seq}: rows were deleted"
                result.damage = Damage(DamageKind.DELETED, expected, detail)
            else:
                detail = f"sequence number {seq} appears twice"
                result.damage = Damage(DamageKind.INSERTED, seq, detail)
            return result
        row_hash = entry[12]
        try:
            digest = sha256(prev_raw + stored_entry_bytes(chain_json, entry, seq)).digest()
        except (TypeError, ValueError):
            digest = b""
        if entry[11] != prev or digest.hex() != row_hash:
            # The row after is read only now: no look-ahead cost on the healthy path.
            result.damage = _classify(chain, entry, next(rows, None), prev, start_seq)
            return result
        pin = pins.get(seq)
        if pin is not None and pin != row_hash and result.first_unpinned is None:
            result.first_unpinned = Damage(
                DamageKind.RECOMPUTED,
                seq,
                f"hash of row {seq} differs from the one a signed checkpoint recorded: "
                "the chain was rewritten from here on",
            )
        prev, prev_raw = row_hash, digest
        expected += 1
        result.checked += 1
        result.last_seq, result.last_hash = seq, row_hash
        if progress is not None and result.checked % PROGRESS_EVERY_ROWS == 0:
            progress(chain, result.checked, total)
    return result


def _classify(  # noqa: PLR0911 - one return per damage kind reads best
    chain: str,
    entry: StoredEntry,
    following: StoredEntry | None,
    prev: str,
    start_seq: int,
) -> Damage:
    seq, prev_hash, row_hash = entry[0], entry[11], entry[12]

    def verifies(row: StoredEntry | None, as_seq: int, after: str) -> bool:
        return (
            row is not None
            and row[11] == after
            and hash_entry(chain, row, seq=as_seq, prev_hash=after) == row[12]
        )

    if following is not None and following[0] == seq + 1 and verifies(following, seq, prev):
        if verifies(entry, seq + 1, following[12]):
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
    self_consistent = hash_entry(chain, entry, seq=seq, prev_hash=prev_hash) == row_hash
    if prev_hash != prev and self_consistent and seq > start_seq:
        detail = f"row {seq - 1} was changed and its hash recomputed; row {seq} no longer links"
        return Damage(DamageKind.EDITED, seq - 1, detail)
    if prev_hash == prev:
        return Damage(DamageKind.EDITED, seq, f"row {seq} was changed after it was written")
    return Damage(DamageKind.EDITED, seq, f"row {seq} does not match its hash or link")


def _original_seq(chain: str, entry: StoredEntry) -> int | None:
    seq = entry[0]
    for offset in range(1, MOVED_ROW_WINDOW + 1):
        for candidate in (seq + offset, seq - offset):
            if candidate >= 1 and (
                hash_entry(chain, entry, seq=candidate, prev_hash=entry[11]) == entry[12]
            ):
                return candidate
    return None


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
