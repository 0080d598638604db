"""Records as a store of sealed values for key rotation (``bastion.crypto.ReencryptionTarget``).

Registered with the keyring at start-up, so ``bastion keys reencrypt`` re-seals every record
(soft-deleted ones too: they still hold data until purged) under the tenant's newest data key,
and ``bastion keys retire`` refuses while any record still uses an old version.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, and_, bindparam, func, or_, select, update

from bastion.crypto import SealedItem
from bastion.crypto.envelope import KIND_TENANT, header
from bastion.records.keys import sealed_id
from bastion.records.models import RecordRow
from bastion.records.types import RECORD_PURPOSE

TARGET_NAME = "records"


class RecordsReencryptionTarget:
    """Scans records in (collection id, record id) order, which is the order of their sealed
    ids, so the keyring's resumable cursor (the last sealed id) continues exactly."""

    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    @property
    def name(self) -> str:
        return TARGET_NAME

    def scan(self, tenant: str, *, after: str | None, limit: int) -> Sequence[SealedItem]:
        query = select(RecordRow.collection_id, RecordRow.id, RecordRow.sealed).where(
            RecordRow.tenant_id == tenant
        )
        if after is not None:
            collection_id, _, record_id = after.partition("/")
            query = query.where(
                or_(
                    RecordRow.collection_id > collection_id,
                    and_(RecordRow.collection_id == collection_id, RecordRow.id > record_id),
                )
            )
        query = query.order_by(RecordRow.collection_id, RecordRow.id).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            SealedItem(sealed_id(str(row[0]), str(row[1])), RECORD_PURPOSE, bytes(row[2]))
            for row in rows
        ]

    def store(self, tenant: str, replacements: Sequence[tuple[SealedItem, bytes]]) -> int:
        if not replacements:
            return 0
        # Compare-and-swap on the old ciphertext: a record rewritten since the scan keeps the
        # newer value (sealed with the active key anyway). The version is not bumped: the
        # document did not change, so its ETag must not either.
        statement = (
            update(RecordRow.__table__)  # type: ignore[arg-type]
            .where(
                RecordRow.tenant_id == bindparam("b_tenant"),
                RecordRow.id == bindparam("b_id"),
                RecordRow.sealed == bindparam("b_old"),
            )
            .values(sealed=bindparam("b_new"))
        )
        rows = [
            {
                "b_tenant": tenant,
                "b_id": item.record_id.partition("/")[2],
                "b_old": item.sealed,
                "b_new": sealed,
            }
            for item, sealed in replacements
        ]
        with self._engine.begin() as connection:
            return int(connection.execute(statement, rows).rowcount)

    def count_sealed_with(self, tenant: str, version: int) -> int:
        prefix = header(KIND_TENANT, version)
        query = (
            select(func.count())
            .select_from(RecordRow)
            .where(
                RecordRow.tenant_id == tenant,
                func.substr(RecordRow.sealed, 1, len(prefix)) == prefix,
            )
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
