"""What the records domain needs from the keyring, and how a record is bound to its place.

A record's payload is sealed with purpose ``records.record`` and the AAD id
``"<collection id>/<record id>"``: together with the tenant that the keyring binds, a
ciphertext copied to another record, collection or tenant fails to open.
"""

from __future__ import annotations

from typing import Protocol


class RecordKeys(Protocol):
    """The subset of ``bastion.crypto.Keyring`` used here (a fake can stand in for tests)."""

    def seal(self, tenant: str, *, purpose: str, record_id: str, plaintext: bytes) -> bytes: ...

    def open(self, tenant: str, *, purpose: str, record_id: str, sealed: bytes) -> bytes: ...

    def blind_index(self, tenant: str, *, field: str, value: str | bytes) -> bytes: ...


def sealed_id(collection_id: str, record_id: str) -> str:
    """The id a record's payload is sealed under (both parts are fixed-length UUIDs, so these
    ids sort exactly as (collection id, record id) pairs do)."""
    return f"{collection_id}/{record_id}"


def index_field(collection_id: str, field: str) -> str:
    """The blind-index domain of a field: per collection, so equal values in two collections
    give unrelated digests."""
    return f"records:{collection_id}:{field}"
