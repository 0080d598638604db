"""Audit log on SQLite: chained appends against plain inserts, verification against raw SHA-256.

- appends: ``AuditLog.append`` (validation, actor pseudonym, head lock, hash, insert, head update,
  actor mapping) against inserting the very same rows into an identical table with no chaining,
  both through a Session on the same database file, committing every 100 rows and every row.
  Runs alternate and the median is kept, so machine noise hits both alike. Target ratio >= 0.5.
- verification: ``AuditVerifier.verify`` (read every row's stored entry, prev-hash and hash from
  the database, hash, compare, check the derived columns' definitions) against ``hashlib.sha256``
  over the same prev-hash || entry bytes, already in memory. Target ratio >= 0.3. One process,
  one thread: nothing runs in parallel.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, select
from sqlalchemy.orm import Session

from bastion.audit import AuditEvent, AuditLog, AuditVerifier, Keys
from bastion.audit.repository import EVENTS, stream_entries
from bastion.db import make_engine, upgrade_to_head
from bastion.kernel.clock import SystemClock
from bastion.settings import AuditSettings
from bench.report import Figure, print_ratio

ROUNDS = 3
VERIFY_ROUNDS = 7
TENANT = "7f1c2a9e-0d6b-4a53-9a51-3f4c7f0e1b2d"


class _MacOnlyKeyring:
    """The pseudonymizer half of the keyring (HMAC-SHA256), enough for appends."""

    def __init__(self) -> None:
        self._key = os.urandom(32)

    def system_mac(self, purpose: str, message: bytes) -> bytes:
        return hmac.digest(self._key, purpose.encode() + b"\x00" + message, hashlib.sha256)


def _event(number: int) -> AuditEvent:
    # ~310 bytes canonical, like the entries PERF-NOTES measured.
    return AuditEvent(
        action="record.updated",
        tenant_id=TENANT,
        actor_user_id=f"user-{number % 50}",
        target=f"collection:customers/record:{number:08d}",
        source_ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) bench",
        request_id=f"req-{number:012d}",
        details={"fields": ["name", "email"], "etag": f"W/{number}"},
    )


def _fresh_database(directory: Path, name: str) -> tuple[Engine, Table]:
    engine = make_engine(f"sqlite:///{directory / name}", create=True)
    upgrade_to_head(engine)
    plain = EVENTS.to_metadata(MetaData(), name="bench_plain_events")
    for index in plain.indexes:  # same indexes, names unique in the schema
        index.name = str(index.name).replace("audit_events", "bench_plain_events")
    plain.create(engine)
    return engine, plain


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _cpu_timed(action: Callable[[], None]) -> float:
    # Verification and hashing are pure CPU in this one process (the file is in the page cache):
    # its CPU time is the figure that others' load on the shared cores disturbs least.
    started = time.process_time()
    action()
    return time.process_time() - started


def _chained(engine: Engine, log: AuditLog, count: int, batch: int, offset: int) -> None:
    number = offset
    while number < offset + count:
        with Session(engine) as session, session.begin():
            for _ in range(batch):
                log.append(session, _event(number))
                number += 1


def _plain(engine: Engine, table: Table, rows: list[dict[str, Any]], batch: int) -> None:
    for start in range(0, len(rows), batch):
        with Session(engine) as session, session.begin():
            connection = session.connection()
            for values in rows[start : start + batch]:
                connection.execute(table.insert(), values)


def _appends(directory: Path, *, batch: int, count: int) -> None:
    log = AuditLog(pseudonymizer=_MacOnlyKeyring(), clock=SystemClock(), settings=AuditSettings())
    chained_rates, plain_rates = [], []
    for round_number in range(ROUNDS):
        engine, plain = _fresh_database(directory, f"appends-{batch}-{round_number}.db")
        offset = round_number * count
        chained_rates.append(count / _timed(partial(_chained, engine, log, count, batch, offset)))
        # The stored columns; the generated ones are computed by the (identical) plain table too.
        stored = [c for c in EVENTS.c if c.computed is None]
        with engine.connect() as connection:
            rows = [
                dict(row._mapping)
                for row in connection.execute(
                    select(*stored).where(EVENTS.c.chain_id == TENANT, EVENTS.c.seq > 0)
                )
            ]
        plain_rates.append(len(rows) / _timed(partial(_plain, engine, plain, rows, batch)))
        engine.dispose()
    print_ratio(
        Figure(f"chained appends, {batch}/transaction", statistics.median(chained_rates), "/s"),
        Figure("plain inserts of the same rows", statistics.median(plain_rates), "/s"),
        note="target >= 0.5",
    )


def _verification(directory: Path, *, count: int) -> None:
    engine, _ = _fresh_database(directory, "verify.db")
    log = AuditLog(pseudonymizer=_MacOnlyKeyring(), clock=SystemClock(), settings=AuditSettings())
    _chained(engine, log, count, 500, 0)
    verifier = AuditVerifier(engine=engine, keys=Keys(), checkpoint_dir=None)
    with engine.connect() as connection:
        blobs = [
            bytes.fromhex(prev) + entry for _, entry, prev, _ in stream_entries(connection, TENANT)
        ]

    def raw_hashing() -> None:
        for blob in blobs:
            hashlib.sha256(blob).digest()

    verify_rates, raw_rates = [], []
    for _ in range(VERIFY_ROUNDS):
        verify_rates.append(count / _cpu_timed(partial(_check, verifier)))
        raw_rates.append(count / _cpu_timed(raw_hashing))
    engine.dispose()
    mean_bytes = sum(len(b) for b in blobs) / len(blobs)
    print_ratio(
        Figure(
            "verification (read + hash + compare), 1 process, CPU time",
            statistics.median(verify_rates),
            "/s",
        ),
        Figure(f"raw SHA-256, same {mean_bytes:.0f} B", statistics.median(raw_rates), "/s"),
        note="target >= 0.3",
    )


def _check(verifier: AuditVerifier) -> None:
    report = verifier.verify(TENANT)
    if not report.ok:
        raise RuntimeError(f"benchmark chain failed verification: {report}")


def main() -> None:
    print(f"started {datetime.now(UTC).isoformat(timespec='seconds')}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as name:
        directory = Path(name)
        _appends(directory, batch=100, count=20_000)
        _appends(directory, batch=1, count=1_500)
        _verification(directory, count=50_000)


if __name__ == "__main__":
    main()
