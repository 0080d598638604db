"""Engines with Bastion's connection policy.

SQLite: WAL, ``synchronous=FULL`` (an acknowledged write survives power loss), foreign keys on and a
busy timeout; the file is opened read-write *without* create, so a deleted database is an error and
never a silent, empty new one. PostgreSQL: psycopg 3, pre-ping, bounded pool waits.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Final, Self

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

SQLITE_BUSY_TIMEOUT_MS = 5_000
SQLITE_POOL_SIZE = 40
PG_POOL_SIZE = 20
POOL_TIMEOUT_SECONDS = 5
PG_CONNECT_TIMEOUT_SECONDS = 5


def normalise_url(url: str) -> str:
    """Pin the driver: ``postgresql://`` means psycopg 3, ``sqlite://`` means the stdlib module."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False)
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for any other backend."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    return Path(parsed.database)


# --- one writer at a time, queued in the process ------------------------------------------------
# SQLite has one write lock per database. A connection that finds it taken waits in SQLite's
# busy handler, which *sleeps and polls* (1, 2, 5 ... 100 ms). Under 50 concurrent writes the
# lock then sits free while every waiter sleeps, throughput collapses and the unlucky ones
# starve past clients' timeouts (bench/bench_records.py saw ~40 wrk timeouts per POST run, the
# bare sqlite3 app too). A writer of this process first takes this process-wide gate, just
# before its first write statement, and gives it back when its transaction ends: waiters are
# woken at once, in order of the kernel's lock queue. The gate never replaces SQLite's lock
# (another process still meets the busy handler); a writer that has waited the whole busy
# timeout for it goes on without it and lets SQLite decide, so the gate can slow nothing
# down past what SQLite alone would.
_WRITE_PREFIXES: Final = ("INSERT", "UPDATE", "DELETE", "REPLAC")
_gates: dict[Path, threading.Lock] = {}
_gates_lock = threading.Lock()


def _write_gate(path: Path) -> threading.Lock:
    key = path.resolve()
    with _gates_lock:
        return _gates.setdefault(key, threading.Lock())


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in _WRITE_PREFIXES


class _GatedCursor(sqlite3.Cursor):
    """Takes its connection's write gate before a write statement. At the driver, not as a
    SQLAlchemy ``before_cursor_execute`` listener: any connection-level listener on the engine
    makes SQLAlchemy dispatch events around every connection, BEGIN and statement, which cost
    more than the gate itself (~4 % of a record GET's CPU)."""

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        if _is_write(sql):
            self.connection.take_gate()  # type: ignore[attr-defined]
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Self:
        if _is_write(sql):
            self.connection.take_gate()  # type: ignore[attr-defined]
        return super().executemany(sql, seq_of_parameters)


class _GatedConnection(sqlite3.Connection):
    """A sqlite3 connection whose cursors take the write gate at their first write, and
    which releases it when its transaction ends."""

    gate: threading.Lock | None = None
    holds_gate = False

    def cursor(self, factory: Any = _GatedCursor) -> Any:
        return super().cursor(factory)

    def take_gate(self) -> None:
        if self.gate is not None and not self.holds_gate:
            self.holds_gate = self.gate.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    def release_gate(self) -> None:
        gate = self.gate
        if self.holds_gate and gate is not None:
            self.holds_gate = False
            gate.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_gate()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_gate()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_gate()


def _sqlite_connect(path: Path, *, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    connection = sqlite3.connect(
        f"file:{path}?mode={mode}",
        uri=True,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        check_same_thread=False,
        factory=_GatedConnection,
    )
    connection.gate = _write_gate(path)
    return connection


def _apply_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str, *, create: bool = False) -> Engine:
    """An engine for ``url``. ``create`` allows a missing SQLite file to be created (init only)."""
    url = normalise_url(url)
    path = sqlite_path(url)
    if path is not None:
        engine = create_engine(
            "sqlite+pysqlite://",
            creator=lambda: _sqlite_connect(path, create=create),
            # A file database: pool real connections (the URL alone would pick a memory-db pool).
            poolclass=QueuePool,
            # As many pooled connections as the server has worker threads (anyio's default 40),
            # so that a connection is never closed at check-in and reopened (with its pragmas)
            # for the next request under load.
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_SIZE,
            pool_timeout=POOL_TIMEOUT_SECONDS,
        )
        event.listen(engine, "connect", _apply_sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        # Kept connections for the worker threads' usual concurrency; bursts open more, up to
        # PostgreSQL's default of 100 connections shared with a second process.
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_POOL_SIZE,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS},
    )
