"""The audit chain's byte format: what is hashed and signed, precisely enough to reimplement.

An external verifier needs only this docstring, an export (``bastion audit export``) and the
signing public key.

Entry hash
----------
Every entry belongs to one *chain*: the tenant's id, or ``"system"`` for Bastion's own actions.
Sequence numbers start at 1 and have no gaps. For entry ``n``::

    hash(n) = SHA-256( raw32(prev_hash(n)) || canonical_json(entry(n)) )
    prev_hash(1) = 64 hex zeros  (GENESIS_HASH);  prev_hash(n) = hash(n - 1)

``raw32`` is the 32 bytes the lowercase hex string stands for; hashes are stored and exported as
64 lowercase hex characters. ``entry(n)`` is a JSON object with exactly these 13 members:

=============  ======================================================================
``v``          1 (this format's version)
``chain``      the chain id (string)
``seq``        the sequence number (integer)
``time``       UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always 6 fractional digits, ``Z``)
``tenant``     tenant id, or null on the system chain
``actor``      the actor's pseudonym (HMAC of the user id), or null
``action``     dotted action name, e.g. ``member.removed``
``target``     what was acted on (string) or null
``outcome``    ``success`` | ``failure`` | ``denied`` | ``error``
``source_ip``  the client address or null
``user_agent`` the client's User-Agent or null
``request_id`` the request id or null
``details``    a JSON object (possibly empty)
=============  ======================================================================

``canonical_json`` is Python's ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8: keys sorted by code point at every depth, no whitespace,
non-ASCII characters written as themselves, ``"``, ``\\`` and control characters escaped as JSON
requires (``\\n``, ``\\u001f`` …). To keep the encoding identical in every language, details hold
only strings, booleans, null, arrays, objects and integers within ±(2^53 - 1); floats are refused.

Checkpoint signature
--------------------
A checkpoint pins a chain's head. Its Ed25519 signature (RFC 8032, pure Ed25519) covers
``canonical_json`` of::

    {"type": "bastion.audit.checkpoint", "v": 1, "chain", "seq", "head_hash", "time",
     "prev_seq", "entries_digest", "key_id"}

where ``prev_seq`` is the previous checkpoint's ``seq`` on the chain (0 for the first),
``entries_digest`` = hex SHA-256 of the concatenated ``raw32(hash(k))`` for ``prev_seq < k <= seq``,
and ``key_id`` = the first 16 bytes, hex, of SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, Final

FORMAT_VERSION: Final = 1
GENESIS_HASH: Final = "0" * 64
SYSTEM_CHAIN: Final = "system"
CHECKPOINT_TYPE: Final = "bastion.audit.checkpoint"
HASH_HEX_LENGTH: Final = 64
KEY_ID_BYTES: Final = 16
TIME_LENGTH: Final = len("2026-01-01T00:00:00.000000Z")

# The covered members, in sorted order. The template below hard-codes the same order: building the
# string directly costs a third of json.dumps, and verification speed is dominated by this step.
COVERED_FIELDS: Final = (
    "action",
    "actor",
    "chain",
    "details",
    "outcome",
    "request_id",
    "seq",
    "source_ip",
    "target",
    "tenant",
    "time",
    "user_agent",
    "v",
)
_ENTRY_TEMPLATE: Final = (
    '{"action":%s,"actor":%s,"chain":%s,"details":%s,"outcome":%s,"request_id":%s,"seq":%d,'
    '"source_ip":%s,"target":%s,"tenant":%s,"time":%s,"user_agent":%s,"v":1}'
)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (see the module docstring)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_time(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; naive datetimes are refused.

    Raises ValueError for a naive datetime: guessing its zone would make the hash depend on the
    machine that wrote it.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    utc = moment.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def parse_time(text: str) -> datetime:
    """Inverse of ``format_time``; raises ValueError for any other shape."""
    if len(text) != TIME_LENGTH or not text.endswith("Z"):
        raise ValueError(f"not a canonical audit time: {text!r}")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def entry_text(
    *,
    chain: str,
    seq: int,
    time: str,
    tenant: str | None,
    actor: str | None,
    action: str,
    target: str | None,
    outcome: str,
    source_ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    details_json: str,
) -> str:
    """``canonical_json(entry)``, given ``details`` already in canonical JSON text.

    Equal, character for character, to ``canonical_json`` of the 13-member object (a property
    test holds this). This text, UTF-8 encoded, is what the ``entry`` column stores and what the
    chain hashes.
    """
    return _ENTRY_TEMPLATE % (
        _text(action),
        _text(actor),
        _text(chain),
        details_json,
        _text(outcome),
        _text(request_id),
        seq,
        _text(source_ip),
        _text(target),
        _text(tenant),
        _text(time),
        _text(user_agent),
    )


def entry_bytes(
    *,
    chain: str,
    seq: int,
    time: str,
    tenant: str | None,
    actor: str | None,
    action: str,
    target: str | None,
    outcome: str,
    source_ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    details_json: str,
) -> bytes:
    """``entry_text`` as UTF-8: the bytes hashed. Raises UnicodeEncodeError for a string that
    is not valid Unicode (a lone surrogate)."""
    return entry_text(
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
        details_json=details_json,
    ).encode("utf-8")


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """``hex(SHA-256(raw32(prev_hash) || canonical))``; raises ValueError for a malformed prev."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def entries_digest(hashes: Iterable[str]) -> str:
    """Hex SHA-256 over the concatenated raw entry hashes of a checkpoint's range."""
    digest = hashlib.sha256()
    for value in hashes:
        digest.update(bytes.fromhex(value))
    return digest.hexdigest()


def key_id_for(public_key: bytes) -> str:
    """The non-secret id of a signing key: first 16 bytes, hex, of SHA-256 of the raw key."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES].hex()


def checkpoint_message(
    *,
    chain: str,
    seq: int,
    head_hash: str,
    time: str,
    prev_seq: int,
    entries_digest: str,
    key_id: str,
) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    document: Mapping[str, object] = {
        "type": CHECKPOINT_TYPE,
        "v": FORMAT_VERSION,
        "chain": chain,
        "seq": seq,
        "head_hash": head_hash,
        "time": time,
        "prev_seq": prev_seq,
        "entries_digest": entries_digest,
        "key_id": key_id,
    }
    return canonical_json(document).encode("utf-8")
