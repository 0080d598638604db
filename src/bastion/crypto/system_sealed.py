"""Where values sealed with the *system* data key live, so its old versions can be retired.

Each domain that calls ``Keyring.seal_system`` declares, next to its purpose constant, the ORM
column that stores the result: ``(Model.column, PURPOSE)``. The AAD rule is the same for every
such column: owner ``system``, that fixed purpose, and the row's primary key (as text) as the
record id. ``bootstrap`` turns the declarations into ``SystemSealedColumn``s and registers them
with the keyring; crypto never imports the domains (they import nothing of crypto either: the
declaration is plain SQLAlchemy). A unit test fails if a ``seal_system`` call site uses a purpose
that no registered column carries, since retirement could then destroy a key still in use.

Crash safety is as for tenant targets (``crypto.reencrypt``): ``store`` is a compare-and-swap on
the old ciphertext, and rows already at the target version are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Column, Engine, String, Table, bindparam, func, select, update
from sqlalchemy.orm import ColumnProperty, QueryableAttribute

from bastion.crypto.envelope import KIND_SYSTEM, MAX_NAME_BYTES, header
from bastion.crypto.reencrypt import SealedItem

MAX_TARGET_NAME_CHARS: Final = 64


class SystemSealedColumn:
    """One column of values sealed with ``seal_system(purpose=purpose, record_id=<primary key>)``.

    ``NULL`` values (an optional sealed field) are skipped. The table needs a one-column primary
    key: it is the record id bound in the associated data, and the re-encryption cursor.
    """

    def __init__(self, *, engine: Engine, table: Table, column: str, purpose: str) -> None:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, String):
            # The key is the record id in the AAD and the resumable cursor: text, compared as text.
            raise ValueError(f"{table.name}: a system-sealed column needs a one-column text key")
        if not purpose or len(purpose.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"{table.name}.{column}: a purpose has 1 to {MAX_NAME_BYTES} bytes")
        self._engine = engine
        self._table = table
        self._id: Column[Any] = keys[0]
        self._sealed: Column[Any] = table.c[column]
        self._purpose = purpose
        self._name = f"system:{table.name}.{column}"
        if len(self._name) > MAX_TARGET_NAME_CHARS:
            raise ValueError(f"{self._name}: target names are limited to {MAX_TARGET_NAME_CHARS}")

    @classmethod
    def of(
        cls, attribute: QueryableAttribute[Any], *, purpose: str, engine: Engine
    ) -> SystemSealedColumn:
        """From a domain's declaration: an ORM attribute (``User.email_sealed``) and its purpose."""
        prop = attribute.property
        column = prop.columns[0] if isinstance(prop, ColumnProperty) else None
        if not isinstance(column, Column) or not isinstance(column.table, Table):
            raise ValueError(f"{attribute}: a system-sealed column must be a mapped table column")
        return cls(engine=engine, table=column.table, column=column.name, purpose=purpose)

    @property
    def name(self) -> str:
        """``system:<table>.<column>``: stable; re-encryption progress is saved under it."""
        return self._name

    @property
    def purpose(self) -> str:
        return self._purpose

    def scan(self, *, after: str | None, limit: int) -> Sequence[SealedItem]:
        """Up to ``limit`` non-NULL values with primary key > ``after``, in primary-key order."""
        query = select(self._id, self._sealed).where(self._sealed.is_not(None))
        if after is not None:
            query = query.where(self._id > after)
        query = query.order_by(self._id).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [SealedItem(str(row[0]), self._purpose, bytes(row[1])) for row in rows]

    def store(self, replacements: Sequence[tuple[SealedItem, bytes]]) -> int:
        """Replace each value that still equals the scanned one; commits; how many replaced."""
        if not replacements:
            return 0
        # Compare-and-swap: a row rewritten since the scan (a new TOTP secret, a changed address)
        # keeps its newer value, which the active key sealed anyway. One executemany per batch.
        statement = (
            update(self._table)
            .where(self._id == bindparam("b_id"), self._sealed == bindparam("b_old"))
            .values({self._sealed.name: bindparam("b_new")})
        )
        rows = [
            {"b_id": item.record_id, "b_old": item.sealed, "b_new": sealed}
            for item, sealed in replacements
        ]
        with self._engine.begin() as connection:
            return int(connection.execute(statement, rows).rowcount)

    def count_sealed_with(self, version: int) -> int:
        """How many values are sealed under system data-key ``version`` (counted in SQL)."""
        prefix = header(KIND_SYSTEM, version)
        query = (
            select(func.count())
            .select_from(self._table)
            .where(func.substr(self._sealed, 1, len(prefix)) == prefix)
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
