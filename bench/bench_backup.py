"""Backup benchmark: `bastion backup create` / `restore` MB/s on a ~200 MB SQLite database.

Baselines measured in the same run, on the same bytes:

* a plain file copy of the database with fsync (the disk ceiling);
* raw multi-threaded zstd (at the configured level) of the same file, output discarded: the
  compression ceiling (PERF-NOTES: compression, not AES-GCM, is the bottleneck);
* restic (Debian package ``restic``; PERF-NOTES' anchor) backing up and restoring the snapshot
  file, when it is installed.

The database mixes JSON-like text (compresses ~4x) with random bytes standing in for sealed
records (AES-GCM output does not compress). ``BASTION_BENCH_BACKUP_MB`` changes the size (the
issue's 1 GiB takes a few minutes here). Figures are MB/s of database bytes (1 MB = 10^6 bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zstandard
from sqlalchemy import text

from bastion.bootstrap import Container, build, initialise
from bastion.settings import Settings
from bench.report import Figure, print_figure, print_ratio

DEFAULT_MB = 200
ROW_BYTES = 2_000
BATCH_ROWS = 5_000
MB = 1_000_000


def _fill(container: Container, target_mb: int) -> None:
    engine = container.engine
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE bench_records "
                "(id INTEGER PRIMARY KEY, tenant TEXT, data TEXT, sealed BLOB)"
            )
        )
    rows = target_mb * MB // ROW_BYTES
    for start in range(0, rows, BATCH_ROWS):
        batch = [
            {
                "id": n,
                "tenant": f"tenant-{n % 50}",
                "data": json.dumps(
                    {
                        "name": f"customer {n}",
                        "email": f"customer{n}@example.com",
                        "plan": ("free", "team", "enterprise")[n % 3],
                        "notes": "renewal due; contact billing before the end of the quarter " * 12,
                    }
                ),
                "sealed": os.urandom(ROW_BYTES // 2),
            }
            for n in range(start, min(start + BATCH_ROWS, rows))
        ]
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO bench_records VALUES (:id, :tenant, :data, :sealed)"), batch
            )


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with open(target, "rb") as file:
        os.fsync(file.fileno())


def _zstd(source: Path, level: int) -> None:
    compressor = zstandard.ZstdCompressor(level=level, threads=-1)
    with open(source, "rb") as file:
        for _ in compressor.read_to_iter(file, read_size=1 << 20, write_size=1 << 20):
            pass


def _restic(work: Path, snapshot: Path) -> tuple[float, float] | None:
    restic = shutil.which("restic")
    if restic is None:
        return None
    password = work / "restic-password"
    password.write_text("bench")
    env = {"RESTIC_REPOSITORY": str(work / "restic-repo"), "RESTIC_PASSWORD_FILE": str(password)}
    env["PATH"] = "/usr/bin:/bin"
    env["HOME"] = str(work)

    def run(*args: str) -> None:
        subprocess.run([restic, "--quiet", *args], env=env, check=True, stdout=subprocess.DEVNULL)

    run("init")
    backup = _timed(lambda: run("backup", str(snapshot)))
    stored = sum(p.stat().st_size for p in (work / "restic-repo").rglob("*") if p.is_file())
    print(f"restic repository: {stored / MB:,.1f} MB", flush=True)
    target = work / "restic-restore"
    restore = _timed(lambda: run("restore", "latest", "--target", str(target)))
    return backup, restore


def main() -> None:
    target_mb = int(os.environ.get("BASTION_BENCH_BACKUP_MB", DEFAULT_MB))
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as directory:
        work = Path(directory)
        settings = Settings(env="test", data_dir=work / "data")
        initialise(settings)
        container = build(settings)
        try:
            _fill(container, target_mb)
            database = settings.data_dir / "bastion.db"
            with container.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            size = database.stat().st_size
            print(f"database: {size / MB:,.0f} MB (SQLite), {os.cpu_count()} CPUs", flush=True)

            copy_seconds = _timed(lambda: _copy(database, work / "copy.db"))
            level = settings.backup.zstd_level
            zstd_seconds = _timed(lambda: _zstd(database, level))
            service = container.backup
            created = service.create()
            backup_seconds = created.duration_seconds
            payload = created.backup.payload_bytes
            restored = service.restore(created.backup.backup_id, data_dir=work / "restored")
            restore_seconds = restored.duration_seconds
            restic = _restic(work, work / "copy.db")
        finally:
            container.engine.dispose()

    backup = Figure("bastion backup create", size / MB / backup_seconds, "MB/s")
    restore = Figure(
        "bastion backup restore (verify+replay+chain check)", size / MB / restore_seconds, "MB/s"
    )
    print_figure(Figure("stored size", payload / MB, "MB"), note=f"{size / payload:.2f}x smaller")
    if restic is not None:
        print_ratio(
            backup, Figure("restic backup", size / MB / restic[0], "MB/s"), note="target >= 1"
        )
        print_ratio(
            restore, Figure("restic restore", size / MB / restic[1], "MB/s"), note="target >= 1"
        )
    else:
        print("restic not installed (apt-get install restic): restic baselines skipped", flush=True)
    raw = Figure(f"raw zstd -{level} multi-threaded", size / MB / zstd_seconds, "MB/s")
    print_ratio(backup, raw)
    print_ratio(backup, Figure("file copy + fsync", size / MB / copy_seconds, "MB/s"))
    print_ratio(restore, Figure("file copy + fsync", size / MB / copy_seconds, "MB/s"))
