"""SQL for the audit tables, on a Connection inside the caller's transaction.

Core statements rather than ORM units of work: an append is three small statements, and the
verifier streams millions of plain tuples; ORM identity maps would only add cost.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Row, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bastion.audit.canonical import GENESIS_HASH
from bastion.audit.models import AuditActor, AuditChainHead, AuditCheckpointRow, AuditEventRow
from bastion.audit.verify import StoredEntry

EVENTS: Final = cast(Table, AuditEventRow.__table__)
HEADS: Final = cast(Table, AuditChainHead.__table__)
CHECKPOINTS: Final = cast(Table, AuditCheckpointRow.__table__)
ACTORS: Final = cast(Table, AuditActor.__table__)
STREAM_BATCH_ROWS: Final = 5_000
HEAD_MOVED: Final = "audit chain head moved"  # the append-guard trigger's message (0003)

# What the verifier reads of a row (see verify.StoredEntry): the key, the hashed text, the links.
ENTRY_COLUMNS: Final = (EVENTS.c.seq, EVENTS.c.entry, EVENTS.c.prev_hash, EVENTS.c.hash)


# Statements are built once: building and cache-keying a statement costs more than SQLite takes to
# run it.
_LOCK_HEAD: Final = (
    update(HEADS)
    .where(HEADS.c.chain_id == bindparam("b_chain"))
    .values(last_seq=HEADS.c.last_seq)
    .returning(HEADS.c.last_seq, HEADS.c.last_hash)
)
_INSERT_EVENT: Final = EVENTS.insert()
# ON CONFLICT DO NOTHING: two first appends racing to create a head (or an actor mapping) must
# both succeed; PostgreSQL makes the loser wait for the winner's commit, then skip.
_INSERT_IGNORING: Final = {
    (dialect.__name__.rsplit(".", 1)[-1], table.name): dialect.insert(
        table
    ).on_conflict_do_nothing()
    for dialect in (postgresql, sqlite)
    for table in (HEADS, ACTORS)
}


def _insert_ignoring_conflict(connection: Connection, table: Table, values: dict[str, Any]) -> None:
    dialect = "postgresql" if connection.dialect.name == "postgresql" else "sqlite"
    connection.execute(_INSERT_IGNORING[dialect, table.name], values)


def lock_head(connection: Connection, chain: str) -> tuple[int, str]:
    """Lock the chain's head until the transaction ends and return (last seq, last hash).

    A no-op UPDATE … RETURNING takes the same row lock as SELECT … FOR UPDATE on PostgreSQL (so
    other chains never wait) and, being a write, takes SQLite's database write lock *before* the
    head is read, so no other writer can slip between the read and our write.
    """
    row = connection.execute(_LOCK_HEAD, {"b_chain": chain}).one_or_none()
    if row is None:
        _insert_ignoring_conflict(
            connection, HEADS, {"chain_id": chain, "last_seq": 0, "last_hash": GENESIS_HASH}
        )
        row = connection.execute(_LOCK_HEAD, {"b_chain": chain}).one()
    return int(row[0]), str(row[1])


def insert_event(connection: Connection, values: Mapping[str, object]) -> bool:
    """Insert an entry; the database moves the head with it (trigger, migration 0003).

    Returns False, with nothing written, when the entry does not extend the current head (its
    seq or prev_hash is stale) on SQLite, where the refusal undoes only this statement. On
    PostgreSQL the same refusal aborts the transaction, so callers lock and read the head first
    there and a refusal can only mean a bug: it raises.
    """
    try:
        connection.execute(_INSERT_EVENT, values)
    except IntegrityError as exc:
        if connection.dialect.name == "sqlite" and HEAD_MOVED in str(exc.orig):
            return False
        raise
    return True


def insert_events(connection: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert consecutive entries of one chain, its head locked by the caller (``lock_head``),
    in one multi-row statement; the database checks each against the head and moves it, as
    for ``insert_event``. A refused row raises IntegrityError, after which the caller's
    transaction must roll back (rows before it may be written in it)."""
    if rows:
        connection.execute(_INSERT_EVENT, list(rows))


def remember_actor(connection: Connection, pseudonym: str, user_id: str, now: datetime) -> None:
    _insert_ignoring_conflict(
        connection, ACTORS, {"pseudonym": pseudonym, "user_id": user_id, "created_at": now}
    )


def forget_actor(connection: Connection, user_id: str) -> bool:
    result = connection.execute(ACTORS.delete().where(ACTORS.c.user_id == user_id))
    return result.rowcount > 0


def actor_user_id(connection: Connection, pseudonym: str) -> str | None:
    value = connection.scalar(select(ACTORS.c.user_id).where(ACTORS.c.pseudonym == pseudonym))
    return None if value is None else str(value)


def chain_ids(connection: Connection) -> list[str]:
    """Every chain that has a head, an event or a checkpoint (a wiped table still shows up)."""
    found: set[str] = set()
    for table in (HEADS, EVENTS, CHECKPOINTS):
        found.update(str(v) for v in connection.scalars(select(table.c.chain_id).distinct()))
    return sorted(found)


def head(connection: Connection, chain: str) -> tuple[int, str] | None:
    row = connection.execute(
        select(HEADS.c.last_seq, HEADS.c.last_hash).where(HEADS.c.chain_id == chain)
    ).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


def count_events(connection: Connection, chain: str, *, from_seq: int = 1) -> int:
    return int(
        connection.scalar(
            select(func.count()).where(EVENTS.c.chain_id == chain, EVENTS.c.seq >= from_seq)
        )
        or 0
    )


def stream_entries(
    connection: Connection, chain: str, *, from_seq: int = 1, to_seq: int | None = None
) -> Generator[StoredEntry, None, None]:
    """The chain's rows in sequence order as (seq, entry UTF-8 bytes, prev_hash, hash)."""
    with closing(stream_entry_batches(connection, chain, from_seq=from_seq, to_seq=to_seq)) as b:
        for batch in b:
            yield from batch


def stream_entry_batches(
    connection: Connection, chain: str, *, from_seq: int = 1, to_seq: int | None = None
) -> Generator[list[StoredEntry], None, None]:
    """``stream_entries`` as the database hands them over: lists of up to STREAM_BATCH_ROWS.

    The verifier walks these lists directly, so no Python frame is resumed per row between the
    driver and its loop.
    """
    if connection.dialect.name == "sqlite":
        yield from _stream_sqlite(connection, chain, from_seq, to_seq)
        return
    statement = (
        select(*ENTRY_COLUMNS)
        .where(EVENTS.c.chain_id == chain, EVENTS.c.seq >= from_seq)
        .order_by(EVENTS.c.seq)
    )
    if to_seq is not None:
        statement = statement.where(EVENTS.c.seq <= to_seq)
    # On the statement, not the connection: Connection.execution_options() changes the
    # connection itself, and every later statement would open a server-side cursor.
    # Closed even when the consumer stops early (a server-side cursor must not outlive it).
    with connection.execute(statement.execution_options(yield_per=STREAM_BATCH_ROWS)) as result:
        for rows in result.partitions():
            # PostgreSQL stores the entry as text in the database's UTF-8: these are its bytes.
            yield [(seq, _utf8(entry), prev, digest) for seq, entry, prev, digest in rows]


def _utf8(entry: object) -> bytes:
    if isinstance(entry, str):
        try:
            return entry.encode("utf-8")
        except UnicodeEncodeError:  # pragma: no cover - PostgreSQL text is valid UTF-8
            return b""
    return entry if isinstance(entry, bytes) else b""


# CAST AS BLOB: the stored UTF-8 bytes as they are, with no decode into str and encode back.
_SQLITE_STREAM: Final = (
    "SELECT seq, CAST(entry AS BLOB), prev_hash, hash FROM audit_events "
    "WHERE chain_id = ? AND seq >= ? AND seq <= ? ORDER BY seq"
)
_SQLITE_MAX_INTEGER: Final = 2**63 - 1


def _stream_sqlite(
    connection: Connection, chain: str, from_seq: int, to_seq: int | None
) -> Generator[list[StoredEntry], None, None]:
    # The driver's own cursor, on the same connection and transaction: SQLAlchemy's Row layer
    # costs more per row than hashing it, and verification reads every row.
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - a checked-out connection always has one
        raise RuntimeError("no DBAPI connection")
    cursor = driver.cursor()
    try:
        cursor.execute(
            _SQLITE_STREAM, (chain, from_seq, _SQLITE_MAX_INTEGER if to_seq is None else to_seq)
        )
        while batch := cursor.fetchmany(STREAM_BATCH_ROWS):
            yield batch
    finally:
        cursor.close()


def hash_at(connection: Connection, chain: str, seq: int) -> str | None:
    value = connection.scalar(
        select(EVENTS.c.hash).where(EVENTS.c.chain_id == chain, EVENTS.c.seq == seq)
    )
    return None if value is None else str(value)


def hashes_between(connection: Connection, chain: str, after: int, through: int) -> list[str]:
    return [
        str(v)
        for v in connection.scalars(
            select(EVENTS.c.hash)
            .where(EVENTS.c.chain_id == chain, EVENTS.c.seq > after, EVENTS.c.seq <= through)
            .order_by(EVENTS.c.seq)
        )
    ]


def checkpoints(connection: Connection, chain: str) -> Sequence[Row[Any]]:
    return connection.execute(
        select(CHECKPOINTS).where(CHECKPOINTS.c.chain_id == chain).order_by(CHECKPOINTS.c.seq)
    ).all()


def last_checkpoint(connection: Connection, chain: str) -> Row[Any] | None:
    return connection.execute(
        select(CHECKPOINTS)
        .where(CHECKPOINTS.c.chain_id == chain)
        .order_by(CHECKPOINTS.c.seq.desc())
        .limit(1)
    ).one_or_none()
