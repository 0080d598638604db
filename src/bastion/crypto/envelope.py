"""The sealed-data format and the associated data that binds it to its place. Pure: no I/O.

Layout of a sealed value (all integers big-endian)::

    offset 0   1 byte    format version (0x01)
    offset 1   1 byte    key kind: 0x01 tenant data key, 0x02 system data key
    offset 2   4 bytes   key version (>= 1)
    offset 6  12 bytes   random nonce (96 bits, from the OS CSPRNG)
    offset 18  n + 16    AES-256-GCM ciphertext and tag

The associated data is the 6-byte header, the 2-byte lengths of the owner (tenant id or
``system``) and of the purpose, the owner, the purpose, and last the record id (its length is what
remains). Binding the header means the format, kind and version cannot be swapped; binding owner,
purpose and record id means a ciphertext copied to another row, collection or tenant fails to open.
The length prefixes make the encoding injective (``("ab", "c")`` and ``("a", "bc")`` differ).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

FORMAT_V1: Final = 0x01
KIND_TENANT: Final = 0x01
KIND_SYSTEM: Final = 0x02
HEADER_BYTES: Final = 6
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
PAYLOAD_OFFSET: Final = HEADER_BYTES + NONCE_BYTES
MIN_SEALED_BYTES: Final = PAYLOAD_OFFSET + TAG_BYTES
MAX_KEY_VERSION: Final = 2**32 - 1
# Names are bound in the associated data with 2-byte lengths; these bounds keep them far below it.
MAX_NAME_BYTES: Final = 1024
SYSTEM_OWNER: Final = "system"
# Bastion's own keys (``crypto_system_keys.name``) and the slots a wrapped key can sit in.
SYSTEM_DATA: Final = "data"
SYSTEM_MAC: Final = "mac"
SYSTEM_SIGNING: Final = "signing"
SLOT_KEY: Final = "key"
SLOT_INDEX: Final = "index"

_HEADER = struct.Struct(">BBI")
_LENGTHS = struct.Struct(">HH")


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """The parsed, not yet authenticated, header of a sealed value."""

    kind: int
    version: int


class MalformedSealedError(ValueError):
    """The bytes are not a sealed value of a known format. Internal: the keyring re-raises it as
    IntegrityCheckError naming the object."""


def header(kind: int, version: int) -> bytes:
    return _HEADER.pack(FORMAT_V1, kind, version)


def parse_header(sealed: bytes) -> SealedHeader:
    """The header of ``sealed``, or MalformedSealedError. Authenticates nothing."""
    if not isinstance(sealed, bytes | bytearray | memoryview):
        raise MalformedSealedError("sealed value is not bytes")
    if len(sealed) < MIN_SEALED_BYTES:
        raise MalformedSealedError(f"sealed value is too short ({len(sealed)} bytes)")
    fmt, kind, version = _HEADER.unpack_from(sealed)
    if fmt != FORMAT_V1:
        raise MalformedSealedError(f"unknown sealed format {fmt}")
    if kind not in (KIND_TENANT, KIND_SYSTEM):
        raise MalformedSealedError(f"unknown key kind {kind}")
    if version == 0:
        raise MalformedSealedError("key version 0 does not exist")
    return SealedHeader(kind=kind, version=version)


def aad_prefix(owner: str, purpose: str) -> bytes:
    """The owner and purpose part of the associated data (the keyring caches it)."""
    o = owner.encode()
    p = purpose.encode()
    if len(o) > MAX_NAME_BYTES or len(p) > MAX_NAME_BYTES:
        raise ValueError(f"owner and purpose are limited to {MAX_NAME_BYTES} bytes")
    return _LENGTHS.pack(len(o), len(p)) + o + p


def associated_data(head: bytes, owner: str, purpose: str, record_id: str) -> bytes:
    """Header, length-prefixed owner and purpose, then the record id (see the module docstring)."""
    return head + aad_prefix(owner, purpose) + record_id.encode()


def wrap_context(scope: str, owner: str, version: int, slot: str) -> bytes:
    """Associated data for wrapping a key under the KEK: a wrapped key moved to another tenant,
    version or slot (data key, blind-index key, signing key) fails to unwrap."""
    parts = [b"bastion:wrap:v1", scope.encode(), owner.encode(), str(version).encode()]
    parts.append(slot.encode())
    return b"".join(struct.pack(">H", len(part)) + part for part in parts)
