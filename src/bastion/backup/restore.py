"""Restore: verify everything, put the data back, make erased tenants stay erased, check the chains.

Order matters. The whole payload is decrypted and checked (every chunk's hash and tag, then the
plaintext's SHA-256) into a staging file before anything is installed. For SQLite, the erasure
replay and the audit-chain verification also run on that staging file, so a restore that fails any
check leaves nothing behind. For PostgreSQL, ``pg_restore --single-transaction`` installs all or
nothing; the replay and the chain check then run on the restored database.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit import AuditEvent, AuditLog, AuditVerifier, Keys, Outcome
from bastion.audit.canonical import key_id_for
from bastion.backup import snapshot
from bastion.backup.errors import BackupCorrupted, BackupError, RestoreRefused
from bastion.backup.manifest import Manifest
from bastion.backup.stream import open_stream
from bastion.backup.types import BackupSummary, Progress, RestoreReport
from bastion.crypto import Keyring, verify_signature
from bastion.db import UnitOfWork, make_engine
from bastion.db.engine import sqlite_path
from bastion.errors import InvalidInput
from bastion.kernel.clock import Clock
from bastion.settings import AuditSettings

if TYPE_CHECKING:
    from bastion.backup.service import BackupService

DATABASE_FILE: Final = "bastion.db"
RESTORING_SUFFIX: Final = ".restoring"
DATA_DIR_MODE: Final = 0o700


def _verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    return verify_signature(public_key, message=message, signature=signature)


class _Checks:
    def __init__(self, tables: dict[str, int], erased: int, chains: int) -> None:
        self.tables = tables
        self.erased = erased
        self.chains = chains


class Restorer:
    """One restore, driven by the service (which audits it)."""

    def __init__(self, service: BackupService, *, pg_bin_dir: Path | None, clock: Clock) -> None:
        self._service = service
        self._bin_dir = pg_bin_dir
        self._clock = clock
        self._trust_backup = False

    def restore(
        self,
        backup_id: str,
        *,
        data_dir: Path | None,
        database_url: str | None,
        force: bool,
        progress: Progress | None,
        trust_backup_keyring: bool = False,
    ) -> RestoreReport:
        started = time.monotonic()
        self._trust_backup = trust_backup_keyring
        if (data_dir is None) == (database_url is None):
            raise InvalidInput("restore into either a data directory or a database URL")
        if database_url is not None and sqlite_path(database_url) is not None:
            raise InvalidInput("restore SQLite backups into a data directory (--data-dir)")
        manifest = (
            self._service.unverified_manifest(backup_id)
            if trust_backup_keyring
            else self._service.manifest(backup_id)
        )
        wanted = "sqlite" if data_dir is not None else "postgresql"
        if manifest.backend != wanted:
            raise InvalidInput(
                f"backup {backup_id} is a {manifest.backend} backup; it cannot be restored "
                f"into {'a data directory' if data_dir is not None else 'PostgreSQL'}"
            )
        if data_dir is not None:
            checks = self._sqlite(manifest, data_dir, force=force, progress=progress)
            destination = str(data_dir / DATABASE_FILE)
        else:
            url = database_url or ""
            checks = self._postgres(manifest, url, force=force, progress=progress)
            destination = f"PostgreSQL database {make_url_database(url)}"
        return RestoreReport(
            backup=BackupSummary.of(manifest),
            destination=destination,
            restored_bytes=manifest.plaintext_bytes,
            tables=checks.tables,
            erasures_replayed=checks.erased,
            chains_verified=checks.chains,
            duration_seconds=time.monotonic() - started,
        )

    def _decrypt_to(self, manifest: Manifest, path: Path, progress: Progress | None) -> None:
        opener = self._service.opener(manifest)
        done = 0

        def advance(size: int) -> None:
            nonlocal done
            done += size
            if progress is not None:
                progress("restore", done, manifest.payload_bytes)

        with (
            open(path, "wb") as sink,
            self._service.target.read_payload(manifest.backup_id) as payload,
        ):
            os.chmod(path, 0o600)
            open_stream(payload, manifest, opener=opener, sink=sink, progress=advance)
            sink.flush()
            os.fsync(sink.fileno())

    def _sqlite(
        self, manifest: Manifest, data_dir: Path, *, force: bool, progress: Progress | None
    ) -> _Checks:
        data_dir.mkdir(parents=True, exist_ok=True, mode=DATA_DIR_MODE)
        database = data_dir / DATABASE_FILE
        if database.exists() and not force:
            raise RestoreRefused(
                f"{database} already exists; restore into an empty data directory, or pass "
                f"--force to replace it"
            )
        staged = data_dir / (DATABASE_FILE + RESTORING_SUFFIX)
        try:
            self._decrypt_to(manifest, staged, progress)
            checks = self._after(f"sqlite:///{staged}", manifest)
            # Fold the WAL the checks created back into the file before it is moved.
            with closing(sqlite3.connect(staged)) as connection:
                connection.execute("PRAGMA journal_mode=DELETE")
            snapshot.install_sqlite(staged, database, force=force)
        finally:
            for leftover in (staged, Path(f"{staged}-wal"), Path(f"{staged}-shm")):
                leftover.unlink(missing_ok=True)
        return checks

    def _postgres(
        self, manifest: Manifest, url: str, *, force: bool, progress: Progress | None
    ) -> _Checks:
        engine = make_engine(url)
        try:
            try:
                empty = snapshot.is_postgres_empty(engine)
            except SQLAlchemyError as exc:
                raise BackupError(
                    f"cannot connect to the restore database {make_url_database(url)}: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
            if not force and not empty:
                raise RestoreRefused(
                    f"database {make_url_database(url)} is not empty; restore into an empty "
                    f"database, or pass --force to replace what the backup holds"
                )
            staged = self._service.staging_dir() / f"restore-{manifest.backup_id}.dump"
            try:
                self._decrypt_to(manifest, staged, progress)
                snapshot.restore_postgres(staged, engine, url, bin_dir=self._bin_dir, force=force)
            finally:
                staged.unlink(missing_ok=True)
        finally:
            engine.dispose()
        return self._after(url, manifest)

    def _after(self, url: str, manifest: Manifest) -> _Checks:
        """Replay this installation's erasure ledger, then verify the restored audit chains
        (hashes, checkpoint signatures) and that their heads are the ones the manifest names."""
        engine = make_engine(url)
        try:
            restored = Keyring(
                uow=UnitOfWork(engine), provider=self._service.keyring.provider, clock=self._clock
            )
            if self._trust_backup:
                # Every chunk authenticated under a key only the master key could wrap, so the
                # signing key inside the backup is as trustworthy as the backup: check with it.
                public_key = restored.signing_public_key()
                manifest.verify_signature(public_key, _verify)
                erased = 0  # the backup's own ledger is all there is
            else:
                public_key = self._service.signing_public_key()
                erased = restored.replay_erasures(self._service.erasures())
            keys = Keys(public_keys={key_id_for(public_key): public_key}, verify_signature=_verify)
            # No checkpoint directory: exported checkpoints may be newer than the backup.
            report = AuditVerifier(engine=engine, keys=keys, checkpoint_dir=None).verify()
            for chain in report.chains:
                if chain.damage is not None:
                    raise BackupCorrupted(
                        f"backup {manifest.backup_id}: restored audit chain {chain.chain} is "
                        f"damaged at sequence number {chain.damage.seq} "
                        f"({chain.damage.kind.value}: {chain.damage.detail})"
                    )
            found = {chain.chain: chain.last_seq for chain in report.chains}
            for chain_id, head in manifest.audit_heads.items():
                if found.get(chain_id) != head.seq:
                    raise BackupCorrupted(
                        f"backup {manifest.backup_id}: restored audit chain {chain_id} ends at "
                        f"{found.get(chain_id)}, the manifest says {head.seq}"
                    )
            if self._trust_backup:
                self._audit_in_restored(engine, restored, manifest)
            tables = snapshot.table_row_counts(engine)
        finally:
            engine.dispose()
        return _Checks(tables, erased, len(report.chains))

    def _audit_in_restored(self, engine: Engine, keyring: Keyring, manifest: Manifest) -> None:
        """Without the installation's own database, the restore is recorded where it landed."""
        log = AuditLog(pseudonymizer=keyring, clock=self._clock, settings=AuditSettings())
        with UnitOfWork(engine).begin() as session:
            log.append(
                session,
                AuditEvent(
                    action="backup.restored",
                    target=f"backup:{manifest.backup_id}",
                    outcome=Outcome.SUCCESS,
                    details={"trusted_backup_keyring": True, "bytes": manifest.plaintext_bytes},
                ),
            )


def make_url_database(url: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - tiny helper, keeps imports local

    return str(make_url(url).database)
