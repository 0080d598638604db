"""Backup test helpers: real installations (SQLite or PostgreSQL), data that changes while a backup
runs, table comparison, and a byte flipper."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from bastion.bootstrap import Container, build, initialise
from bastion.settings import Settings

PG_DUMP_REASON = "pg_dump/pg_restore for the server's major version are not installed"


def require_pg_tools(engine: Engine) -> None:
    """Skip (fail under CI=true) unless pg_dump and pg_restore match the server's major version."""
    from bastion.backup.errors import BackupToolMissing
    from bastion.backup.snapshot import pg_tool, server_major

    with engine.connect() as connection:
        major = server_major(connection)
    try:
        pg_tool("pg_dump", major, None)
        pg_tool("pg_restore", major, None)
    except BackupToolMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: PostgreSQL backups must be tested)", pytrace=False)
        pytest.skip(f"{PG_DUMP_REASON}: {exc}")


def installation(settings: Settings, **options) -> Container:
    initialise(settings)
    return build(settings, **options)


def create_app_table(engine: Engine) -> None:
    """A stand-in for tenant data: rows plus a running total kept in the same transaction."""
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE app_rows (id INTEGER PRIMARY KEY, tenant VARCHAR(36), body TEXT)")
        )
        connection.execute(text("CREATE TABLE app_total (id INTEGER PRIMARY KEY, total INTEGER)"))
        connection.execute(text("INSERT INTO app_total VALUES (1, 0)"))


def insert_rows(engine: Engine, start: int, count: int, *, body_bytes: int = 200) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO app_rows VALUES (:id, :tenant, :body)"),
            [
                {"id": n, "tenant": f"tenant-{n % 7}", "body": os.urandom(body_bytes // 2).hex()}
                for n in range(start, start + count)
            ],
        )
        connection.execute(text("UPDATE app_total SET total = total + :n"), {"n": count})


@contextmanager
def writes_running(
    engine: Engine, *, start: int = 1_000_000, batch: int = 20
) -> Iterator[list[int]]:
    """Keep inserting batches (rows + total in one transaction) until the block ends."""
    stop = threading.Event()
    done: list[int] = []
    failures: list[BaseException] = []

    def write() -> None:
        position = start
        try:
            while not stop.is_set():
                insert_rows(engine, position, batch)
                position += batch
                done.append(position)
        except BaseException as exc:  # reported by the test, not swallowed
            failures.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=30)
    if failures:
        raise failures[0]


def table_contents(engine: Engine, *, exclude: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, for equality checks."""
    contents = {}
    with engine.connect() as connection:
        for name in sorted(inspect(connection).get_table_names()):
            if name in exclude:
                continue
            rows = connection.execute(text(f'SELECT * FROM "{name}"')).all()  # noqa: S608 - reflected names
            contents[name] = sorted((tuple(row) for row in rows), key=repr)
    return contents


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        value = file.read(1)
        file.seek(offset)
        file.write(bytes([value[0] ^ 0x01]))


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target)
