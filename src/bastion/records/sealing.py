"""Sealing, opening and blind-indexing records with the tenant's keys.

A payload is sealed with purpose ``records.record`` under the id ``<collection id>/<record
id>`` (``keys.sealed_id``), so it opens only in its own tenant, collection and record. A failure
to open is a RecordIntegrityError naming the collection and record, never the contents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from bastion.crypto import IntegrityCheckError
from bastion.kernel.clock import as_utc
from bastion.records import documents
from bastion.records.errors import RecordIntegrityError
from bastion.records.keys import RecordKeys, index_field, sealed_id
from bastion.records.types import RECORD_PURPOSE, Record


class StoredRecord(Protocol):
    """A stored record as read: an ORM row, or a plain row of the read path's SELECT."""

    @property
    def id(self) -> str: ...
    @property
    def collection_id(self) -> str: ...
    @property
    def sealed(self) -> bytes: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


# Told about every record that fails its integrity check, before the error is raised.
TamperHandler = Callable[[str, RecordIntegrityError], None]


class RecordSealer:
    """The records domain's use of the keyring; thread-safe (the keyring is)."""

    def __init__(self, keys: RecordKeys, *, on_tamper: TamperHandler | None = None) -> None:
        self._keys = keys
        self._on_tamper = on_tamper

    def seal(self, tenant_id: str, collection_id: str, record_id: str, encoded: bytes) -> bytes:
        return self._keys.seal(
            tenant_id,
            purpose=RECORD_PURPOSE,
            record_id=sealed_id(collection_id, record_id),
            plaintext=encoded,
        )

    def open(self, tenant_id: str, collection: str, row: StoredRecord) -> Record:
        """The record ``row`` holds, opened; RecordIntegrityError (500) if its ciphertext does
        not belong to this tenant, collection and record."""
        try:
            plaintext = self._keys.open(
                tenant_id,
                purpose=RECORD_PURPOSE,
                record_id=sealed_id(row.collection_id, row.id),
                sealed=row.sealed,
            )
        except IntegrityCheckError:
            error = RecordIntegrityError(
                f"Record {row.id} of collection {collection!r} failed its integrity check: its "
                "stored ciphertext was tampered with, or moved from another record or tenant. "
                "It is not served.",
                collection=collection,
                record_id=row.id,
            )
            if self._on_tamper is not None:
                self._on_tamper(tenant_id, error)
            raise error from None
        return Record(
            row.id,
            collection,
            documents.decode_stored(plaintext),
            row.version,
            as_utc(row.created_at),
            as_utc(row.updated_at),
        )

    def digests(
        self,
        tenant_id: str,
        collection_id: str,
        document: Mapping[str, Any],
        fields: Sequence[str],
    ) -> dict[str, bytes]:
        """Blind indexes of ``document``'s indexable values in ``fields``."""
        found: dict[str, bytes] = {}
        for field in fields:
            text = documents.index_text(document.get(field))
            if text is not None:
                found[field] = self.digest(tenant_id, collection_id, field, text)
        return found

    def digest(self, tenant_id: str, collection_id: str, field: str, text: str) -> bytes:
        return self._keys.blind_index(
            tenant_id, field=index_field(collection_id, field), value=text
        )
