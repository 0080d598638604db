"""The backup manifest: what a backup holds and how to check it, signed with Ed25519.

A manifest is UTF-8 JSON. The signature covers the canonical encoding (sorted keys, no spaces,
ASCII) of every field except ``signature``, so any change to any field, including a chunk hash or
the wrapped key, makes it fail. It is written last: a backup without a valid manifest never counts.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from bastion.backup.errors import ManifestSignatureInvalid

FORMAT: Final = "bastion-backup"
FORMAT_VERSION: Final = 1
MAX_MANIFEST_BYTES: Final = 64 * 1024 * 1024
BACKUP_ID_PATTERN: Final = re.compile(r"bk-\d{8}T\d{6}Z-[0-9a-f]{8}")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")

Backend = Literal["sqlite", "postgresql"]
Signer = Callable[[bytes], bytes]
SignatureCheck = Callable[[bytes, bytes, bytes], bool]
"""``(public_key, message, signature) -> valid``."""


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One sealed chunk of the payload: its size and the SHA-256 of its sealed bytes."""

    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything needed to check and restore one backup, except the master key."""

    backup_id: str
    created_at: datetime
    completed_at: datetime
    backend: Backend
    schema_revision: str | None
    server_version: str | None
    snapshot_format: str
    plaintext_bytes: int
    plaintext_sha256: str
    compression_level: int
    compressed_bytes: int
    chunk_bytes: int
    chunks: tuple[ChunkInfo, ...]
    wrapped_key: bytes
    master_key_id: str
    audit_heads: Mapping[str, ChainHead] = field(default_factory=dict)
    erasures: int = 0
    public_key: bytes = b""
    signature: bytes = b""

    @property
    def payload_bytes(self) -> int:
        return sum(chunk.size for chunk in self.chunks)

    def body(self) -> dict[str, Any]:
        """The signed fields, as JSON-ready values."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "backup_id": self.backup_id,
            "created_at": _time(self.created_at),
            "completed_at": _time(self.completed_at),
            "database": {
                "backend": self.backend,
                "schema_revision": self.schema_revision,
                "server_version": self.server_version,
                "snapshot_format": self.snapshot_format,
            },
            "plaintext": {"bytes": self.plaintext_bytes, "sha256": self.plaintext_sha256},
            "compression": {
                "algorithm": "zstd",
                "level": self.compression_level,
                "bytes": self.compressed_bytes,
            },
            "encryption": {
                "algorithm": "AES-256-GCM",
                "key": "per-backup random key, HKDF-SHA256 per stream, wrapped by the master key",
                "nonce": "chunk index, 96-bit big-endian",
                "aad": "stream id, chunk index, final flag",
                "chunk_plaintext_bytes": self.chunk_bytes,
                "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
                "master_key_id": self.master_key_id,
            },
            "payload": {"bytes": self.payload_bytes, "chunk_count": len(self.chunks)},
            "chunks": [{"bytes": c.size, "sha256": c.sha256} for c in self.chunks],
            "audit_heads": {
                chain: {"seq": head.seq, "hash": head.hash}
                for chain, head in sorted(self.audit_heads.items())
            },
            "erasure_ledger_entries": self.erasures,
            "signing_public_key": self.public_key.hex(),
        }

    def signing_message(self) -> bytes:
        return canonical(self.body())

    def signed(self, sign: Signer, public_key: bytes) -> Manifest:
        """A copy carrying ``public_key`` and its Ed25519 signature over the body."""
        unsigned = _replace(self, public_key=public_key, signature=b"")
        return _replace(unsigned, signature=sign(unsigned.signing_message()))

    def to_json(self) -> bytes:
        document = self.body()
        document["signature"] = {"algorithm": "Ed25519", "value": self.signature.hex()}
        return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"

    def verify_signature(self, trusted_public_key: bytes, check: SignatureCheck) -> None:
        """ManifestSignatureInvalid unless signed by ``trusted_public_key`` (the keyring's key,
        not the one the manifest names: that one only helps explain a mismatch)."""
        if self.public_key != trusted_public_key:
            raise ManifestSignatureInvalid(
                f"backup {self.backup_id}: manifest signed by key {self.public_key.hex()[:16]}, "
                f"not this installation's signing key {trusted_public_key.hex()[:16]}"
            )
        if not check(trusted_public_key, self.signing_message(), self.signature):
            raise ManifestSignatureInvalid(
                f"backup {self.backup_id}: manifest signature does not verify (tampered manifest)"
            )


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _replace(manifest: Manifest, **changes: Any) -> Manifest:
    values = {name: getattr(manifest, name) for name in Manifest.__dataclass_fields__}
    values.update(changes)
    return Manifest(**values)


def parse_manifest(data: bytes, *, expected_id: str) -> Manifest:
    """Parse a manifest; ManifestSignatureInvalid (naming the backup) if it is malformed.

    Parsing checks shape only; the caller must still call ``verify_signature``.
    """
    try:
        if len(data) > MAX_MANIFEST_BYTES:
            raise ValueError("manifest is too large")
        doc = json.loads(data)
        return _from_document(doc, expected_id)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestSignatureInvalid(
            f"backup {expected_id}: malformed manifest ({exc})"
        ) from None


def _from_document(doc: Mapping[str, Any], expected_id: str) -> Manifest:
    if doc["format"] != FORMAT or doc["version"] != FORMAT_VERSION:
        raise ValueError(f"unknown format {doc['format']!r} version {doc['version']!r}")
    if doc["backup_id"] != expected_id:
        raise ValueError(f"manifest names backup {doc['backup_id']!r}")
    database, encryption = doc["database"], doc["encryption"]
    chunks = tuple(ChunkInfo(_count(c["bytes"]), _digest(c["sha256"])) for c in doc["chunks"])
    if len(chunks) != _count(doc["payload"]["chunk_count"]) or not chunks:
        raise ValueError("chunk count does not match the chunk list")
    backend = database["backend"]
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown backend {backend!r}")
    return Manifest(
        backup_id=expected_id,
        created_at=_parse_time(doc["created_at"]),
        completed_at=_parse_time(doc["completed_at"]),
        backend=backend,
        schema_revision=_optional_text(database["schema_revision"]),
        server_version=_optional_text(database["server_version"]),
        snapshot_format=str(database["snapshot_format"]),
        plaintext_bytes=_count(doc["plaintext"]["bytes"]),
        plaintext_sha256=_digest(doc["plaintext"]["sha256"]),
        compression_level=_count(doc["compression"]["level"]),
        compressed_bytes=_count(doc["compression"]["bytes"]),
        chunk_bytes=_count(encryption["chunk_plaintext_bytes"]),
        chunks=chunks,
        wrapped_key=base64.b64decode(encryption["wrapped_key"], validate=True),
        master_key_id=str(encryption["master_key_id"]),
        audit_heads={
            str(chain): ChainHead(_count(head["seq"]), str(head["hash"]))
            for chain, head in doc["audit_heads"].items()
        },
        erasures=_count(doc["erasure_ledger_entries"]),
        public_key=bytes.fromhex(doc["signing_public_key"]),
        signature=bytes.fromhex(doc["signature"]["value"]),
    )


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _digest(value: object) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{value!r} is not a SHA-256 hex digest")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("time is not a string")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time has no zone")
    return moment.astimezone(UTC)
