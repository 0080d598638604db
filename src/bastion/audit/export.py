"""JSON Lines export of one chain, and the offline verifier a customer runs on it.

An export is, one JSON object a line (canonical JSON, so it is byte-stable)::

    {"type": "export", "format": "bastion.audit.export", "v": 1, "chain", "head_seq",
     "head_hash", "exported_at"}                         first line; unsigned, catches a cut file
    {"type": "event", <the 13 hashed members>, "prev_hash", "hash"}      one per entry, in order
    {"type": "checkpoint", ..., "signature"}             the chain's signed checkpoints

``verify_export`` needs only the file and the signing public key (PEM). Exported checkpoint files
beside it (``<dir>/<chain>/<seq>.json``, as the webhook or checkpoint directory delivered them) add
per-entry hashes, so a rewritten chain is pinned down to the first changed row.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection

from bastion.audit import repository
from bastion.audit.canonical import FORMAT_VERSION, canonical_json, entry_bytes, format_time
from bastion.audit.checkpoints import (
    CHECKPOINT_LINE_TYPE,
    checkpoint_document,
    load_checkpoint_files,
    parse_checkpoint,
    record_from_row,
)
from bastion.audit.errors import InvalidAuditExport
from bastion.audit.verify import (
    CheckpointRecord,
    Damage,
    DamageKind,
    Keys,
    Progress,
    StoredEntry,
    VerifyReport,
    check_checkpoints,
    judge_chain,
    walk_chain,
)

EXPORT_FORMAT: Final = "bastion.audit.export"
EVENT_LINE_TYPE: Final = "event"
HEADER_LINE_TYPE: Final = "export"
# RFC 8410 SubjectPublicKeyInfo for Ed25519: this fixed DER prefix, then the 32-byte key.
_ED25519_SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
_ED25519_KEY_BYTES: Final = 32
_EVENT_FIELDS: Final = (
    "time", "tenant", "actor", "action", "target", "outcome", "source_ip", "user_agent",
    "request_id",
)  # fmt: skip


def export_lines(connection: Connection, chain: str, *, now: datetime) -> Iterator[str]:
    """The chain as JSON Lines (each without the newline), header first, checkpoints last."""
    current = repository.head(connection, chain)
    head_seq, head_hash = current if current is not None else (0, None)
    yield canonical_json(
        {
            "type": HEADER_LINE_TYPE,
            "format": EXPORT_FORMAT,
            "v": FORMAT_VERSION,
            "chain": chain,
            "head_seq": head_seq,
            "head_hash": head_hash,
            "exported_at": format_time(now),
        }
    )
    # Up to the head read above: rows appended meanwhile would look like inserted ones.
    with closing(repository.stream_entries(connection, chain, to_seq=head_seq)) as entries:
        for entry in entries:
            yield canonical_json(_event_document(chain, entry))
    for row in repository.checkpoints(connection, chain):
        if int(row.seq) <= head_seq:
            yield canonical_json(checkpoint_document(record_from_row(row)))


def _event_document(chain: str, entry: StoredEntry) -> dict[str, Any]:
    seq, canonical, prev_hash, entry_hash = entry
    try:
        members: Any = json.loads(canonical)
    except (TypeError, ValueError, RecursionError):
        members = None
    document: dict[str, Any] = {"type": EVENT_LINE_TYPE}
    if isinstance(members, dict):
        document.update(members)
    else:
        # A damaged cell is exported as found; the offline verifier hashes it and flags it.
        text = canonical.decode("utf-8", errors="replace") if isinstance(canonical, bytes) else ""
        document.update(chain=chain, seq=seq, entry=text)
    document.update(prev_hash=prev_hash, hash=entry_hash)
    return document


def load_public_key_pem(data: bytes) -> bytes:
    """The raw 32-byte Ed25519 key from a ``PUBLIC KEY`` PEM; raises InvalidAuditExport."""
    text = data.decode("ascii", errors="replace").strip()
    header, footer = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    if not text.startswith(header) or footer not in text:
        raise InvalidAuditExport("public key: expected a PEM 'PUBLIC KEY' block")
    body = text[len(header) : text.index(footer)]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidAuditExport("public key: the PEM body is not base64") from None
    if len(der) != len(_ED25519_SPKI_PREFIX) + _ED25519_KEY_BYTES or not der.startswith(
        _ED25519_SPKI_PREFIX
    ):
        raise InvalidAuditExport("public key: not an Ed25519 public key")
    return der[len(_ED25519_SPKI_PREFIX) :]


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    document = json.loads(line)
                except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                    raise InvalidAuditExport(f"{path}:{number}: not JSON") from None
                if not isinstance(document, dict):
                    raise InvalidAuditExport(f"{path}:{number}: not a JSON object")
                yield number, document
    except UnicodeDecodeError as exc:
        raise InvalidAuditExport(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InvalidAuditExport(f"{path}: cannot read ({exc.strerror})") from None


def _stored_entry(document: Mapping[str, Any], where: str) -> StoredEntry:
    try:
        seq, chain = document["seq"], document["chain"]
        prev_hash, entry_hash = document["prev_hash"], document["hash"]
    except KeyError as exc:
        raise InvalidAuditExport(f"{where}: event lacks {exc}") from None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InvalidAuditExport(f"{where}: seq is not an integer")
    if not all(isinstance(h, str) for h in (prev_hash, entry_hash)):
        raise InvalidAuditExport(f"{where}: event members must be strings or null")
    raw = document.get("entry")
    if isinstance(raw, str) and "time" not in document:  # exported as found (see above)
        return seq, raw.encode("utf-8", errors="replace"), prev_hash, entry_hash
    try:
        values = [document[name] for name in _EVENT_FIELDS]
        details = document["details"]
    except KeyError as exc:
        raise InvalidAuditExport(f"{where}: event lacks {exc}") from None
    if not all(v is None or isinstance(v, str) for v in values):
        raise InvalidAuditExport(f"{where}: event members must be strings or null")
    time, tenant, actor, action, target, outcome, source_ip, user_agent, request_id = values
    try:
        # A non-object details value cannot have been written by Bastion; hashing its canonical
        # text anyway makes it fail as an edited row rather than abort the whole check.
        canonical = entry_bytes(
            chain=chain,
            seq=seq,
            time=time,
            tenant=tenant,
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            source_ip=source_ip,
            user_agent=user_agent,
            request_id=request_id,
            details_json=canonical_json(details),
        )
    except (TypeError, ValueError):  # e.g. a lone surrogate: no UTF-8 form, so no hash
        canonical = b""
    return seq, canonical, prev_hash, entry_hash


def verify_export(
    path: Path,
    keys: Keys,
    *,
    checkpoint_dir: Path | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify an export file offline: the chain, its header, its checkpoints and any exported
    checkpoint files in ``checkpoint_dir``. Raises InvalidAuditExport for an unreadable file.
    """
    header: Mapping[str, Any] | None = None
    records: list[CheckpointRecord] = []
    total = 0
    for number, document in _lines(path):
        kind = document.get("type")
        if kind == HEADER_LINE_TYPE and header is None:
            header = document
        elif kind == CHECKPOINT_LINE_TYPE:
            records.append(parse_checkpoint(document, source=f"{path.name}:{number}"))
        elif kind == EVENT_LINE_TYPE:
            total += 1
        else:
            raise InvalidAuditExport(f"{path}:{number}: unexpected line type {kind!r}")
    if header is None or header.get("format") != EXPORT_FORMAT:
        raise InvalidAuditExport(f"{path}: not a Bastion audit export (no header line)")
    chain = header.get("chain")
    if not isinstance(chain, str):
        raise InvalidAuditExport(f"{path}: the header names no chain")
    damage: list[Damage] = []
    if checkpoint_dir is not None:
        found, problems = load_checkpoint_files(checkpoint_dir, chain)
        records.extend(found)
        damage = [Damage(DamageKind.BAD_CHECKPOINT, seq, why) for seq, why in problems]
    if any(record.chain != chain for record in records):
        raise InvalidAuditExport(f"{path}: holds checkpoints of another chain")
    findings = check_checkpoints(records, keys)
    findings.damage.extend(damage)

    def entries() -> Iterator[StoredEntry]:
        for number, document in _lines(path):
            if document.get("type") != EVENT_LINE_TYPE:
                continue
            if document.get("chain") != chain:
                raise InvalidAuditExport(f"{path}:{number}: event of another chain")
            yield _stored_entry(document, f"{path}:{number}")

    walk = walk_chain(chain, entries(), pinned=findings.pinned, progress=progress, total=total)
    head_seq, head_hash = header.get("head_seq"), header.get("head_hash")
    recorded = (
        (head_seq, head_hash) if isinstance(head_seq, int) and isinstance(head_hash, str) else None
    )
    return VerifyReport((judge_chain(chain, walk, findings, recorded_head=recorded, keys=keys),))
