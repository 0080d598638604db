"""The backup service: create, list, verify, restore, prune, drill, and the daily job.

Every run and every restore is recorded on the system audit chain. Failures raise BackupError
subclasses (see ``errors``) with one line naming what failed; alerts are structlog error events
(``backup.failed``, ``backup.stale``, ``backup.drill_failed``) that monitoring will subscribe to.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Final, TypeVar

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit import AuditEvent, AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.backup import repository, snapshot
from bastion.backup.errors import (
    BackupCorrupted,
    BackupKeyMismatch,
    BackupNotFound,
    InstallationUnavailable,
)
from bastion.backup.manifest import Backend, Manifest, parse_manifest
from bastion.backup.restore import Restorer
from bastion.backup.retention import RetentionPolicy, backups_to_keep
from bastion.backup.stream import CHUNK_BYTES, open_stream, seal_stream
from bastion.backup.targets import BackupTarget, PayloadUpload
from bastion.backup.types import (
    BackupSummary,
    CreateReport,
    DrillResult,
    Freshness,
    Listing,
    Progress,
    PruneReport,
    RestoreReport,
)
from bastion.crypto import (
    CryptoError,
    ErasureReceipt,
    Keyring,
    StreamKeys,
    StreamOpener,
    verify_signature,
)
from bastion.db import UnitOfWork
from bastion.db.engine import sqlite_path
from bastion.errors import AppError, StartupError
from bastion.kernel.clock import Clock
from bastion.kernel.ids import new_id
from bastion.settings import BackupSettings

log = structlog.get_logger("bastion.backup")
STALE_EVENT: Final = "backup.stale"
FAILED_EVENT: Final = "backup.failed"
DRILL_FAILED_EVENT: Final = "backup.drill_failed"
STAGING_MODE: Final = 0o700
T = TypeVar("T")


def _check(public_key: bytes, message: bytes, signature: bytes) -> bool:
    return verify_signature(public_key, message=message, signature=signature)


class BackupService:
    """Encrypted, signed, verified backups of this installation's database.

    Safe to run from several processes: each backup has its own random id and key, and a backup
    only counts once its signed manifest is published. Restores never write into a non-empty
    database unless forced.
    """

    def __init__(
        self,
        *,
        settings: BackupSettings,
        database_url: str,
        staging_dir: Path,
        target: Callable[[], BackupTarget],
        engine: Engine,
        uow: UnitOfWork,
        keyring: Keyring,
        audit_log: AuditLog,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._url = database_url
        self._staging = staging_dir
        self._target_factory = target
        self._target: BackupTarget | None = None
        self._engine = engine
        self._uow = uow
        self._keyring = keyring
        self._audit = audit_log
        self._clock = clock
        self._keys = StreamKeys(keyring.provider)

    @property
    def target(self) -> BackupTarget:
        # Built on first use, so commands that never touch backups never import boto3.
        if self._target is None:
            self._target = self._target_factory()
        return self._target

    @property
    def settings(self) -> BackupSettings:
        return self._settings

    @property
    def backend(self) -> Backend:
        return "sqlite" if sqlite_path(self._url) is not None else "postgresql"

    # ------------------------------------------------------------------ create
    def create(self, *, progress: Progress | None = None) -> CreateReport:
        """Snapshot the live database, then compress, encrypt and store it; audited either way.

        Raises SnapshotFailed, BackupToolMissing, BackupTargetUnavailable. An interrupted run
        (even ``kill -9``) leaves no manifest, so it never counts as a backup.
        """
        started = time.monotonic()
        created_at = self._clock.now()
        backup_id = f"bk-{created_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        try:
            manifest = self._write(backup_id, created_at, progress)
        except AppError as exc:
            log.error(FAILED_EVENT, backup_id=backup_id, error=str(exc))
            self._record_failure("backup.failed", backup_id, {"error": str(exc)[:500]})
            raise
        summary = BackupSummary.of(manifest)
        self._record(
            "backup.created",
            backup_id,
            Outcome.SUCCESS,
            {
                "target": self.target.description,
                "bytes": manifest.plaintext_bytes,
                "stored_bytes": manifest.payload_bytes,
                "chunks": len(manifest.chunks),
                "schema_revision": manifest.schema_revision,
            },
        )
        return CreateReport(
            backup=summary,
            target=self.target.description,
            duration_seconds=time.monotonic() - started,
            compressed_bytes=manifest.compressed_bytes,
        )

    def _write(self, backup_id: str, created_at: datetime, progress: Progress | None) -> Manifest:
        sealer, wrapped = self._keys.new_stream(backup_id)
        upload = self.target.write_payload(backup_id)
        try:
            with self._snapshot(backup_id, progress) as (reader, info, total):
                done = 0

                def advance(size: int) -> None:
                    nonlocal done
                    done += size
                    if progress is not None:
                        progress("upload", done, total)

                sealed = seal_stream(
                    reader,
                    upload,
                    sealer=sealer,
                    level=self._settings.zstd_level,
                    threads=self._settings.zstd_threads,
                    progress=advance,
                )
            upload.commit()
        except BaseException:
            _abort(upload, backup_id)
            raise
        manifest = Manifest(
            backup_id=backup_id,
            created_at=created_at,
            completed_at=self._clock.now(),
            backend=self.backend,
            schema_revision=info.schema_revision,
            server_version=info.server_version,
            snapshot_format=(
                snapshot.SQLITE_FORMAT if self.backend == "sqlite" else snapshot.PG_DUMP_FORMAT
            ),
            plaintext_bytes=sealed.plaintext_bytes,
            plaintext_sha256=sealed.plaintext_sha256,
            compression_level=self._settings.zstd_level,
            compressed_bytes=sealed.compressed_bytes,
            chunk_bytes=CHUNK_BYTES,
            chunks=sealed.chunks,
            wrapped_key=wrapped,
            master_key_id=self._keys.master_key_id,
            audit_heads=info.audit_heads,
            erasures=info.erasures,
        ).signed(self._keyring.sign, self._keyring.signing_public_key())
        # Last step: from here on the backup exists.
        self.target.publish_manifest(backup_id, manifest.to_json())
        return manifest

    @contextmanager
    def _snapshot(
        self, backup_id: str, progress: Progress | None
    ) -> Iterator[tuple[IO[bytes], snapshot.SnapshotInfo, int | None]]:
        if progress is not None:
            progress("snapshot", 0, None)
        database = sqlite_path(self._url)
        if database is None:
            with snapshot.snapshot_postgres(
                self._engine, self._url, bin_dir=self._settings.pg_bin_dir
            ) as (reader, info):
                yield reader, info, None
            return
        self.staging_dir()
        copy = self._staging / f"snapshot-{backup_id}.db"
        try:
            info = snapshot.snapshot_sqlite(database, copy)
            with open(copy, "rb") as reader:
                yield reader, info, copy.stat().st_size
        finally:
            copy.unlink(missing_ok=True)

    def staging_dir(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True, mode=STAGING_MODE)
        return self._staging

    # ------------------------------------------------------------------ list / verify
    def manifest(self, backup_id: str) -> Manifest:
        """The backup's manifest, signature checked against this installation's signing key.
        Raises BackupNotFound, ManifestSignatureInvalid, InstallationUnavailable."""
        manifest = self.unverified_manifest(backup_id)
        manifest.verify_signature(self.signing_public_key(), _check)
        return manifest

    def unverified_manifest(self, backup_id: str) -> Manifest:
        """The parsed manifest, signature NOT checked (a disaster restore checks it later)."""
        return parse_manifest(self.target.read_manifest(backup_id), expected_id=backup_id)

    def signing_public_key(self) -> bytes:
        """This installation's signing key; InstallationUnavailable if its database is gone."""
        return _current(self._keyring.signing_public_key)

    def erasures(self) -> list[ErasureReceipt]:
        """This installation's erasure ledger; InstallationUnavailable if its database is gone."""
        return _current(self._keyring.erasures)

    def listing(self) -> Listing:
        """Complete backups whose manifest verifies, oldest first; the others under ``bad``."""
        good: list[BackupSummary] = []
        bad: dict[str, str] = {}
        for backup_id in self.target.complete_ids():
            try:
                good.append(BackupSummary.of(self.manifest(backup_id)))
            except BackupCorrupted as exc:
                bad[backup_id] = exc.detail
            except BackupNotFound:
                continue  # deleted while listing
        good.sort(key=lambda summary: summary.created_at)
        return Listing(good=tuple(good), bad=bad)

    def newest(self) -> BackupSummary | None:
        good = self.listing().good
        return good[-1] if good else None

    def opener(self, manifest: Manifest) -> StreamOpener:
        """Unwrap the backup key; BackupKeyMismatch (naming both master keys) if it fails."""
        try:
            return self._keys.open_stream(manifest.backup_id, manifest.wrapped_key)
        except CryptoError:
            raise BackupKeyMismatch(
                f"backup {manifest.backup_id} was encrypted under master key "
                f"{manifest.master_key_id}, and the configured master key "
                f"({self._keys.master_key_id}) cannot unwrap its key: configure the master key "
                f"that was in use when the backup was made"
            ) from None

    def verify(self, backup_id: str, *, progress: Progress | None = None) -> BackupSummary:
        """Check the manifest signature, every chunk's hash and authentication tag, and the
        plaintext's size and SHA-256, without writing anything. Raises BackupCorrupted naming the
        first bad chunk, ManifestSignatureInvalid, BackupKeyMismatch, BackupNotFound."""
        manifest = self.manifest(backup_id)
        opener = self.opener(manifest)
        done = 0

        def advance(size: int) -> None:
            nonlocal done
            done += size
            if progress is not None:
                progress("verify", done, manifest.payload_bytes)

        with self.target.read_payload(backup_id) as payload:
            open_stream(payload, manifest, opener=opener, progress=advance)
        self._record("backup.verified", backup_id, Outcome.SUCCESS, {})
        return BackupSummary.of(manifest)

    # ------------------------------------------------------------------ restore
    def restore(
        self,
        backup_id: str,
        *,
        data_dir: Path | None = None,
        database_url: str | None = None,
        force: bool = False,
        trust_backup_keyring: bool = False,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Verify the backup completely, restore it into ``data_dir`` (SQLite) or the database
        at ``database_url`` (PostgreSQL), replay this installation's erasure ledger into it and
        verify its audit chains. Audited on this installation's system chain, success or not.

        ``trust_backup_keyring``: for when this installation's database is lost. The manifest is
        then checked with the signing key inside the backup, which is trustworthy because every
        chunk authenticated under a key only the master key could have wrapped; the erasure
        ledger is the backup's own; the restore is audited in the restored database instead."""
        if trust_backup_keyring:
            return Restorer(self, pg_bin_dir=self._settings.pg_bin_dir, clock=self._clock).restore(
                backup_id,
                data_dir=data_dir,
                database_url=database_url,
                force=force,
                progress=progress,
                trust_backup_keyring=True,
            )
        restorer = Restorer(self, pg_bin_dir=self._settings.pg_bin_dir, clock=self._clock)
        destination = str(data_dir) if data_dir is not None else "a PostgreSQL database"
        try:
            report = restorer.restore(
                backup_id,
                data_dir=data_dir,
                database_url=database_url,
                force=force,
                progress=progress,
            )
        except AppError as exc:
            self._record_failure(
                "backup.restore_failed",
                backup_id,
                {"destination": destination, "error": str(exc)[:500]},
            )
            raise
        self._record(
            "backup.restored",
            backup_id,
            Outcome.SUCCESS,
            {
                "destination": report.destination,
                "bytes": report.restored_bytes,
                "rows": report.rows,
                "erasures_replayed": report.erasures_replayed,
                "chains_verified": report.chains_verified,
            },
        )
        return report

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    @property
    def clock(self) -> Clock:
        return self._clock

    # ------------------------------------------------------------------ retention
    def prune(self, *, now: datetime | None = None) -> PruneReport:
        """Delete backups the retention policy no longer keeps, and interrupted runs older than
        ``incomplete_after_hours``. Backups whose manifest fails are kept for inspection."""
        now = now or self._clock.now()
        listing = self.listing()
        policy = RetentionPolicy(
            daily=self._settings.keep_daily,
            weekly=self._settings.keep_weekly,
            monthly=self._settings.keep_monthly,
        )
        keep = backups_to_keep({b.backup_id: b.created_at for b in listing.good}, policy)
        deleted = [b.backup_id for b in listing.good if b.backup_id not in keep]
        for backup_id in deleted:
            self.target.delete(backup_id)
        grace = timedelta(hours=self._settings.incomplete_after_hours)
        leftovers = [
            left.backup_id for left in self.target.leftovers() if now - left.modified_at > grace
        ]
        for backup_id in leftovers:
            self.target.delete(backup_id)
        self._clean_staging(now, grace)
        if deleted or leftovers:
            self._record(
                "backup.pruned",
                None,
                Outcome.SUCCESS,
                {"deleted": list(deleted), "interrupted_deleted": list(leftovers)},
            )
        kept = tuple(b.backup_id for b in listing.good if b.backup_id in keep)
        return PruneReport(kept=kept, deleted=tuple(deleted), leftovers_deleted=tuple(leftovers))

    def _clean_staging(self, now: datetime, grace: timedelta) -> None:
        if not self._staging.is_dir():
            return
        cutoff = (now - grace).timestamp()
        for path in self._staging.iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    def freshness(self, *, now: datetime | None = None) -> Freshness:
        """P18: the newest good backup's age; logs ``backup.stale`` (error) past the threshold."""
        now = now or self._clock.now()
        newest = self.newest()
        age = None if newest is None else (now - newest.created_at).total_seconds() / 3600
        result = Freshness(newest, age, self._settings.alert_after_hours)
        if result.stale:
            log.error(
                STALE_EVENT,
                newest_backup=None if newest is None else newest.backup_id,
                age_hours=None if age is None else round(age, 1),
                threshold_hours=self._settings.alert_after_hours,
            )
        return result

    # ------------------------------------------------------------------ drills
    def record_drill(self, result: DrillResult) -> None:
        """Store a drill's result and audit it, in one transaction."""
        with self._uow.begin() as session:
            repository.add_drill(session, result)
            self._audit.append(
                session,
                AuditEvent(
                    action="backup.drill_completed" if result.ok else "backup.drill_failed",
                    target=None if result.backup_id is None else f"backup:{result.backup_id}",
                    outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
                    details={
                        "drill_id": result.drill_id,
                        "duration_ms": round(result.duration_seconds * 1000),
                        "error": (result.detail or "")[:500],
                    },
                ),
            )

    def drills(self, *, limit: int = 1) -> list[DrillResult]:
        """The latest drills, newest first."""
        with self._uow.begin() as session:
            return repository.latest_drills(session, limit=limit)

    def new_drill_id(self) -> str:
        return new_id()

    def _record_failure(
        self, action: str, backup_id: str | None, details: dict[str, JsonValue]
    ) -> None:
        """Audit a failure; if even that fails (the database is what failed), log it instead of
        hiding the original error behind the audit one."""
        try:
            self._record(action, backup_id, Outcome.FAILURE, details)
        except (AppError, SQLAlchemyError) as exc:
            log.error("backup.audit_failed", action=action, backup_id=backup_id, error=str(exc))

    def _record(
        self,
        action: str,
        backup_id: str | None,
        outcome: Outcome,
        details: dict[str, JsonValue],
    ) -> None:
        with self._uow.begin() as session:
            self._audit.append(
                session,
                AuditEvent(
                    action=action,
                    target=None if backup_id is None else f"backup:{backup_id}",
                    outcome=outcome,
                    details=details,
                ),
            )


def _abort(upload: PayloadUpload, backup_id: str) -> None:
    # Best effort: the original failure is what the operator needs to see, and a payload left
    # behind without a manifest is never listed and is pruned after the grace period.
    try:
        upload.abort()
    except (AppError, OSError) as exc:
        log.warning("backup.abort_failed", backup_id=backup_id, error=str(exc))


def _current(read: Callable[[], T]) -> T:
    try:
        return read()
    except (SQLAlchemyError, StartupError) as exc:
        raise InstallationUnavailable(
            f"this installation's database cannot be read ({str(exc).splitlines()[0]}); if it "
            f"is lost, restore with --trust-backup-keyring"
        ) from None
