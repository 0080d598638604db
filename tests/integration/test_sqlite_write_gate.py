"""The SQLite write gate (``bastion.db.engine``): one writer of the process at a time, queued.

It must be taken at the first write and given back whenever the transaction ends (commit,
rollback, close), never block a reader, and never hold a writer past SQLite's own busy timeout.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bastion.db import engine as engine_module
from bastion.db.engine import make_engine

WRITERS = 12
TRANSACTIONS_EACH = 15


@pytest.fixture
def database(tmp_path: Path) -> tuple[Engine, threading.Lock]:
    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path}", create=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (writer INTEGER, n INTEGER)"))
    return engine, engine_module._write_gate(path)


def test_the_gate_is_held_from_the_first_write_until_the_transaction_ends(database):
    engine, gate = database
    with engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM t"))
        assert not gate.locked(), "a read must not take the gate"
        connection.execute(text("INSERT INTO t VALUES (0, 1)"))
        assert gate.locked()
        connection.commit()
        assert not gate.locked()
        connection.execute(text("INSERT INTO t VALUES (0, 2)"))
        assert gate.locked()
        connection.rollback()
        assert not gate.locked()
        connection.execute(text("UPDATE t SET n = 3"))
        assert gate.locked()
    # Returned to the pool mid-transaction: the pool's reset (a rollback) ends it.
    assert not gate.locked()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM t")).scalars().all() == [1]


def test_concurrent_writers_all_commit_and_lose_nothing(database):
    engine, gate = database
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for n in range(TRANSACTIONS_EACH):
                with engine.begin() as connection:
                    connection.execute(text("INSERT INTO t VALUES (:w, :n)"), {"w": writer, "n": n})
                    connection.execute(text("SELECT count(*) FROM t"))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert not gate.locked()
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM t")).scalar_one()
    assert count == WRITERS * TRANSACTIONS_EACH


def test_a_writer_that_cannot_get_the_gate_goes_on_and_leaves_it_to_its_holder(
    database, monkeypatch
):
    engine, gate = database
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    gate.acquire()  # held by someone else who writes nothing to SQLite
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1, 1)"))
        # The writer went on without the gate and must not release what it never took.
        assert gate.locked()
    finally:
        gate.release()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
