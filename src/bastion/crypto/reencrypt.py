"""Where sealed data lives, as the re-encryption job and retirement see it.

A domain that stores sealed values (records, later) implements ``ReencryptionTarget`` and
registers it with the keyring; ``TableReencryptionTarget`` does it for any table with an id, a
tenant id and a sealed column, so most domains only name their columns.

Crash safety comes from the contract, not from one shared transaction: ``store`` is a
compare-and-swap (a row changed since it was scanned is left alone), and rows already at the target
version are skipped, so replaying a batch after ``kill -9`` is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Column, Engine, Table, bindparam, func, select, update

from bastion.crypto.envelope import KIND_TENANT, header


@dataclass(frozen=True, slots=True)
class SealedItem:
    """One sealed value: what ``Keyring.open`` needs besides the tenant."""

    record_id: str
    purpose: str
    sealed: bytes


class ReencryptionTarget(Protocol):
    @property
    def name(self) -> str:
        """Stable identifier (<= 64 chars); progress is persisted under it."""
        ...

    def scan(self, tenant: str, *, after: str | None, limit: int) -> Sequence[SealedItem]:
        """Up to ``limit`` items of ``tenant`` with record id > ``after``, in record-id order."""
        ...

    def store(self, tenant: str, replacements: Sequence[tuple[SealedItem, bytes]]) -> int:
        """Durably replace each item's sealed value if it still equals ``item.sealed``.

        Returns how many were replaced. Must commit before returning.
        """
        ...

    def count_sealed_with(self, tenant: str, version: int) -> int:
        """How many of ``tenant``'s values are sealed under data-key ``version``."""
        ...


class TableReencryptionTarget:
    """A ``ReencryptionTarget`` over one table: ``id_column`` (text, unique per tenant),
    ``tenant_column`` and ``sealed_column``; every value sealed with one ``purpose``."""

    def __init__(
        self,
        *,
        engine: Engine,
        table: Table,
        purpose: str,
        id_column: str = "id",
        tenant_column: str = "tenant_id",
        sealed_column: str = "sealed",
    ) -> None:
        self._engine = engine
        self._table = table
        self._purpose = purpose
        self._id: Column[str] = table.c[id_column]
        self._tenant: Column[str] = table.c[tenant_column]
        self._sealed: Column[bytes] = table.c[sealed_column]

    @property
    def name(self) -> str:
        return f"table:{self._table.name}"

    def scan(self, tenant: str, *, after: str | None, limit: int) -> Sequence[SealedItem]:
        query = select(self._id, self._sealed).where(self._tenant == tenant)
        if after is not None:
            query = query.where(self._id > after)
        query = query.order_by(self._id).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [SealedItem(str(row[0]), self._purpose, bytes(row[1])) for row in rows]

    def store(self, tenant: str, replacements: Sequence[tuple[SealedItem, bytes]]) -> int:
        if not replacements:
            return 0
        # One executemany per batch: a statement per row costs more than the crypto does.
        statement = (
            update(self._table)
            .where(
                self._tenant == bindparam("b_tenant"),
                self._id == bindparam("b_id"),
                self._sealed == bindparam("b_old"),
            )
            .values({self._sealed.name: bindparam("b_new")})
        )
        rows = [
            {"b_tenant": tenant, "b_id": item.record_id, "b_old": item.sealed, "b_new": sealed}
            for item, sealed in replacements
        ]
        with self._engine.begin() as connection:
            result = connection.execute(statement, rows)
            return int(result.rowcount)

    def count_sealed_with(self, tenant: str, version: int) -> int:
        # The first 6 bytes are the header (format, kind, version): compare them in SQL so the
        # count needs no row to leave the database. substr() works on BLOB and bytea alike.
        prefix = header(KIND_TENANT, version)
        query = (
            select(func.count())
            .select_from(self._table)
            .where(
                self._tenant == tenant,
                func.substr(self._sealed, 1, len(prefix)) == prefix,
            )
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
