"""Consistent snapshots of a live database, and putting one back.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies every page inside one read
transaction, so the copy is the database at one instant while writers go on (WAL readers do not
block writers). PostgreSQL: ``pg_dump --format=custom`` of the server's own major version, run on a
snapshot exported from a REPEATABLE READ transaction in which the schema revision and the audit
chain heads are read too, so the manifest describes exactly what the dump holds.

Subprocesses get an environment built here from the database URL (never the caller's), and the
password only through ``PGPASSWORD``, never on a command line other users can read.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bastion.backup.errors import BackupToolMissing, RestoreRefused, SnapshotFailed
from bastion.backup.manifest import ChainHead

PG_LIB_DIR: Final = Path("/usr/lib/postgresql")
SQLITE_TIMEOUT_SECONDS: Final = 30.0
PG_CONNECT_TIMEOUT_SECONDS: Final = 10
MAX_TOOL_MESSAGE_CHARS: Final = 2000
PG_DUMP_FORMAT: Final = "pg_dump-custom"
SQLITE_FORMAT: Final = "sqlite-database-file"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What the snapshot holds, read inside the snapshot itself."""

    schema_revision: str | None
    audit_heads: Mapping[str, ChainHead] = field(default_factory=dict)
    erasures: int = 0
    server_version: str | None = None


def _read_info(connection: Connection) -> SnapshotInfo:
    names = set(inspect(connection).get_table_names())
    revision = None
    if "alembic_version" in names:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    heads: dict[str, ChainHead] = {}
    if "audit_chain_heads" in names:
        rows = connection.execute(
            text("SELECT chain_id, last_seq, last_hash FROM audit_chain_heads")
        ).all()
        heads = {str(chain): ChainHead(int(seq), str(hash_)) for chain, seq, hash_ in rows}
    erasures = 0
    if "crypto_erasures" in names:
        erasures = int(
            connection.execute(text("SELECT count(*) FROM crypto_erasures")).scalar_one()
        )
    return SnapshotInfo(
        schema_revision=None if revision is None else str(revision),
        audit_heads=heads,
        erasures=erasures,
    )


def table_row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table, for the restore report."""
    with engine.connect() as connection:
        names = sorted(inspect(connection).get_table_names())
        preparer = connection.dialect.identifier_preparer
        return {
            name: int(
                connection.execute(
                    text(f"SELECT count(*) FROM {preparer.quote(name)}")  # noqa: S608 - quoted reflected names
                ).scalar_one()
            )
            for name in names
        }


# ----------------------------------------------------------------------------- SQLite
def snapshot_sqlite(database: Path, into: Path) -> SnapshotInfo:
    """Copy the live database at ``database`` to ``into`` with the online backup API."""
    try:
        source = sqlite3.connect(
            f"file:{database}?mode=rw", uri=True, timeout=SQLITE_TIMEOUT_SECONDS
        )
    except sqlite3.Error as exc:
        raise SnapshotFailed(f"cannot open {database}: {exc}") from None
    try:
        with closing(source), closing(sqlite3.connect(into)) as target:
            # A scratch copy: a crash just means a new snapshot, so no journal and no fsync.
            target.execute("PRAGMA journal_mode=OFF")
            target.execute("PRAGMA synchronous=OFF")
            # pages=-1: one step, one read transaction, hence one consistent instant. A stepwise
            # copy restarts whenever another connection writes, and may never finish under load.
            source.backup(target)
            # A self-contained file: no -wal beside it; the engine turns WAL back on at first use.
            target.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        into.unlink(missing_ok=True)
        raise SnapshotFailed(f"SQLite backup of {database} failed: {exc}") from None
    # A plain engine (no WAL pragma): reading must not turn the copy back into WAL mode.
    copy = create_engine(f"sqlite:///{into}", poolclass=NullPool)
    try:
        with copy.connect() as connection:
            return _read_info(connection)
    finally:
        copy.dispose()


def install_sqlite(restored: Path, database: Path, *, force: bool) -> None:
    """Move a fully verified restored file into place as ``database``; RestoreRefused if a
    database is already there and ``force`` is not set."""
    if database.exists() and not force:
        raise RestoreRefused(
            f"{database} already exists; restore into an empty data directory, or pass --force "
            f"to replace it"
        )
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    os.chmod(restored, 0o600)
    os.replace(restored, database)
    _fsync_directory(database.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ----------------------------------------------------------------------------- PostgreSQL
@dataclass(frozen=True, slots=True)
class PgCommand:
    """A libpq connection string without the password, and the environment that carries it."""

    dsn: str
    env: dict[str, str]


def pg_command(url: str) -> PgCommand:
    parsed = make_url(url)
    password = parsed.password
    # Rebuilt without the password (URL.set(password=None) would keep it): argv is world-readable.
    dsn = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    ).render_as_string(hide_password=False)
    env = {"PGCONNECT_TIMEOUT": str(PG_CONNECT_TIMEOUT_SECONDS), "LC_ALL": "C"}
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return PgCommand(dsn=dsn, env=env)


def server_major(connection: Connection) -> int:
    number = int(connection.execute(text("SHOW server_version_num")).scalar_one())
    return number // 10_000


def pg_tool(tool: str, major: int, bin_dir: Path | None) -> Path:
    """The ``tool`` (pg_dump, pg_restore) for server major ``major``; BackupToolMissing if absent.

    A pg_dump older than the server refuses to run, and one from another major version is not
    what the server's restore tools were tested with, so the version must match.
    """
    directory = bin_dir or PG_LIB_DIR / str(major) / "bin"
    path = directory / tool
    if not os.access(path, os.X_OK):
        raise BackupToolMissing(
            f"{tool} for PostgreSQL {major} not found at {path}; install the "
            f"postgresql-client-{major} package, or set BASTION_BACKUP__PG_BIN_DIR"
        )
    return path


@contextmanager
def snapshot_postgres(
    engine: Engine, url: str, *, bin_dir: Path | None
) -> Iterator[tuple[IO[bytes], SnapshotInfo]]:
    """Yield pg_dump's output stream and what it holds; SnapshotFailed if pg_dump fails."""
    command = pg_command(url)
    try:
        connection = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    except SQLAlchemyError as exc:
        raise SnapshotFailed(f"cannot connect to the database: {exc}") from None
    with connection, connection.begin(), tempfile.TemporaryFile() as errors:
        major = server_major(connection)
        pg_dump = pg_tool("pg_dump", major, bin_dir)
        version = str(connection.execute(text("SHOW server_version")).scalar_one())
        # The exporting transaction stays open until pg_dump is done, so the dump, the schema
        # revision and the chain heads are all one instant of the database.
        snapshot_id = str(connection.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        info = _read_info(connection)
        info = SnapshotInfo(
            schema_revision=info.schema_revision,
            audit_heads=info.audit_heads,
            erasures=info.erasures,
            server_version=version,
        )
        argv = [
            str(pg_dump),
            "--format=custom",
            "--compress=0",  # zstd does it better and faster downstream
            f"--snapshot={snapshot_id}",
            f"--dbname={command.dsn}",
        ]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=command.env)  # noqa: S603 - fixed argv
        stdout = process.stdout
        if stdout is None:  # pragma: no cover - stdout=PIPE always gives one
            raise SnapshotFailed("pg_dump has no output stream")
        try:
            yield stdout, info
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            stdout.close()
        status = process.wait()
        if status != 0:
            raise SnapshotFailed(f"pg_dump exited with status {status}: {_tool_message(errors)}")


def is_postgres_empty(engine: Engine) -> bool:
    with engine.connect() as connection:
        count = connection.execute(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
            )
        ).scalar_one()
    return int(count) == 0


def restore_postgres(
    dump: Path, engine: Engine, url: str, *, bin_dir: Path | None, force: bool
) -> None:
    """pg_restore ``dump`` into the database at ``url`` in one transaction (all or nothing).

    RestoreRefused if the database is not empty and ``force`` is not set; with ``force`` the
    objects in the dump are dropped first (``--clean``)."""
    with engine.connect() as connection:
        major = server_major(connection)
    pg_restore = pg_tool("pg_restore", major, bin_dir)
    empty = is_postgres_empty(engine)
    if not empty and not force:
        raise RestoreRefused(
            f"database {make_url(url).database} is not empty; restore into an empty database, "
            f"or pass --force to replace what the backup holds"
        )
    command = pg_command(url)
    argv = [
        str(pg_restore),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={command.dsn}",
    ]
    if not empty:
        argv[1:1] = ["--clean", "--if-exists"]
    argv.append(str(dump))
    with tempfile.TemporaryFile() as errors:
        status = subprocess.run(  # noqa: S603 - fixed argv
            argv, stdout=subprocess.DEVNULL, stderr=errors, env=command.env, check=False
        ).returncode
        if status != 0:
            raise SnapshotFailed(
                f"pg_restore exited with status {status} (nothing was restored): "
                f"{_tool_message(errors)}"
            )


def _tool_message(errors: IO[bytes]) -> str:
    errors.seek(0)
    message = errors.read().decode(errors="replace").strip()
    return message[-MAX_TOOL_MESSAGE_CHARS:] or "no message"
