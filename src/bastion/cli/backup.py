"""`bastion backup …`: create, list, verify, restore, prune, drill, and the daily job.

Thin: each command builds the container and calls one BackupService method. Progress bars go to
standard error so that the facts on standard output stay greppable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from bastion.backup import BackupService, DrillResult, RestoreReport, run_daily_backup, run_drill
from bastion.backup.types import Progress as ProgressCallback
from bastion.bootstrap import Container, build
from bastion.cli.context import clear_failures, console, error_console, settings_from
from bastion.logs import configure_logging

EXIT_FAILED: Final = 1
MIB: Final = 1024 * 1024

backup_app = typer.Typer(
    help="Encrypted, signed, verified backups: create, list, verify, restore, prune, drill.",
    no_args_is_help=True,
)

BackupIdArgument = Annotated[str, typer.Argument(help="The backup id (see `bastion backup list`).")]


def _say(text: str) -> None:
    console.print(text, soft_wrap=True, markup=False, highlight=False)


@contextmanager
def _service(ctx: typer.Context) -> Iterator[tuple[Container, BackupService]]:
    settings = settings_from(ctx)
    configure_logging(settings.log)
    with clear_failures():
        container = build(settings)
        try:
            yield container, container.backup
        finally:
            container.engine.dispose()


@contextmanager
def _progress_bar() -> Iterator[ProgressCallback]:
    progress = Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=error_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total)
        progress.update(tasks[phase], completed=done, total=total)

    with progress:
        yield update


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


@backup_app.command("create")
def create(ctx: typer.Context) -> None:
    """Snapshot the database now, compress, encrypt and store it with a signed manifest."""
    with _service(ctx) as (_, service), _progress_bar() as progress:
        report = service.create(progress=progress)
    backup = report.backup
    _say(f"created  {backup.backup_id}")
    _say(f"target   {report.target}")
    _say(
        f"size     {_mib(backup.plaintext_bytes)} database -> {_mib(backup.payload_bytes)} "
        f"stored in {backup.chunks} chunks"
    )
    seconds = max(report.duration_seconds, 1e-6)
    _say(f"time     {seconds:.1f} s ({backup.plaintext_bytes / MIB / seconds:.1f} MiB/s)")


@backup_app.command("list")
def list_backups(ctx: typer.Context) -> None:
    """Complete backups whose signed manifest verifies, oldest first."""
    with _service(ctx) as (_, service):
        listing = service.listing()
    for backup in listing.good:
        _say(
            f"{backup.backup_id}  {backup.created_at:%Y-%m-%d %H:%M:%S}Z  {backup.backend:<10}  "
            f"schema {backup.schema_revision or '-':<6}  {_mib(backup.plaintext_bytes):>12}  "
            f"{_mib(backup.payload_bytes):>12} stored"
        )
    if not listing.good:
        _say("no good backups")
    for backup_id, reason in listing.bad.items():
        error_console.print(
            f"warning: {backup_id} is not listed: {reason}", markup=False, soft_wrap=True
        )


@backup_app.command("verify")
def verify(ctx: typer.Context, backup_id: BackupIdArgument) -> None:
    """Check the manifest signature, every chunk and the plaintext digest (writes nothing)."""
    with _service(ctx) as (_, service), _progress_bar() as progress:
        backup = service.verify(backup_id, progress=progress)
    _say(
        f"ok  {backup.backup_id}: signature, {backup.chunks} chunks and the "
        f"{_mib(backup.plaintext_bytes)} plaintext digest verified"
    )


def _print_restore(report: RestoreReport) -> None:
    backup = report.backup
    _say(f"restored     {backup.backup_id} (taken {backup.created_at:%Y-%m-%d %H:%M:%S}Z)")
    _say(f"into         {report.destination}")
    _say(f"schema       {backup.schema_revision or 'unknown'}")
    tables = len(report.tables)
    _say(f"data         {_mib(report.restored_bytes)}, {tables} tables, {report.rows} rows")
    _say(f"erasures     {report.erasures_replayed} erased tenants re-erased from this installation")
    _say(f"audit        {report.chains_verified} chains verified")
    _say(f"time         {report.duration_seconds:.1f} s")


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    backup_id: BackupIdArgument,
    *,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="SQLite: a new (empty) data directory to restore into."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="PostgreSQL: an empty database to restore into."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing database at the destination.")
    ] = False,
    trust_backup_keyring: Annotated[
        bool,
        typer.Option(
            "--trust-backup-keyring",
            help="This installation's database is lost: check the manifest with the signing key "
            "inside the backup (authenticated by the master key) and keep the backup's own "
            "erasure ledger.",
        ),
    ] = False,
) -> None:
    """Verify the backup, restore it, replay the erasure ledger and verify the audit chains."""
    with _service(ctx) as (_, service), _progress_bar() as progress:
        report = service.restore(
            backup_id,
            data_dir=data_dir,
            database_url=database_url,
            force=force,
            trust_backup_keyring=trust_backup_keyring,
            progress=progress,
        )
    _print_restore(report)


@backup_app.command("prune")
def prune(ctx: typer.Context) -> None:
    """Delete backups the retention policy (daily/weekly/monthly) no longer keeps."""
    with _service(ctx) as (_, service):
        report = service.prune()
        freshness = service.freshness()
    for backup_id in report.deleted:
        _say(f"deleted      {backup_id}")
    for backup_id in report.leftovers_deleted:
        _say(f"deleted      {backup_id} (interrupted, no manifest)")
    _say(f"kept         {len(report.kept)} backups")
    if freshness.stale:
        error_console.print(
            f"warning: no good backup in the last {freshness.threshold_hours} hours",
            markup=False,
        )


def _print_drill(result: DrillResult) -> None:
    state = "ok" if result.ok else "FAILED"
    _say(f"drill          {state} ({result.drill_id})")
    _say(f"at             {result.started_at:%Y-%m-%d %H:%M:%S}Z")
    _say(f"backup         {result.backup_id or '-'}")
    point = result.recovery_point
    _say(f"recovery point {'-' if point is None else f'{point:%Y-%m-%d %H:%M:%S}Z'}")
    _say(f"recovery time  {result.duration_seconds:.1f} s")
    if result.ok:
        size = _mib(result.restored_bytes)
        _say(f"restored       {size}, {result.tables} tables, {result.rows} rows")
    else:
        _say(f"error          {result.detail}")


@backup_app.command("drill")
def drill(
    ctx: typer.Context,
    last: Annotated[bool, typer.Option("--last", help="Show the last drill instead.")] = False,
) -> None:
    """Restore the newest backup to a scratch place, verify it, record the time it took."""
    with _service(ctx) as (container, service):
        if last:
            drills = service.drills(limit=1)
            if not drills:
                _say("no drill has run yet")
                raise typer.Exit(EXIT_FAILED)
            result = drills[0]
        else:
            url = container.settings.backup.drill_database_url
            with _progress_bar() as progress:
                result = run_drill(
                    service,
                    drill_database_url=None if url is None else url.get_secret_value(),
                    progress=progress,
                )
    _print_drill(result)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@backup_app.command("status")
def status(ctx: typer.Context) -> None:
    """P18/P20 at a glance: the newest good backup's age and the last drill. Exit 1 if stale or
    the last drill failed (or none ran)."""
    with _service(ctx) as (_, service):
        freshness = service.freshness()
        drills = service.drills(limit=1)
    newest = freshness.newest
    if newest is None or freshness.age_hours is None:
        _say("newest backup  none")
    else:
        _say(f"newest backup  {newest.backup_id} ({freshness.age_hours:.1f} h old)")
    fresh = "no" if freshness.stale else "yes"
    _say(f"fresh          {fresh} (alert after {freshness.threshold_hours} h)")
    if drills:
        _print_drill(drills[0])
    else:
        _say("drill          none yet")
    if freshness.stale or not drills or not drills[0].ok:
        raise typer.Exit(EXIT_FAILED)


@backup_app.command("daily")
def daily(ctx: typer.Context) -> None:
    """The daily job: create, prune, then alert if the newest good backup is too old.

    For cron or a Kubernetes CronJob at backup.daily_at (there is no in-process scheduler yet).
    """
    with _service(ctx) as (_, service):
        report = run_daily_backup(service)
    if report.created is not None:
        _say(f"created      {report.created.backup.backup_id}")
    if report.pruned is not None:
        _say(f"pruned       {len(report.pruned.deleted)} deleted, {len(report.pruned.kept)} kept")
    if report.error is not None:
        _say(f"error        {report.error}")
    if report.error is not None or report.freshness.stale:
        raise typer.Exit(EXIT_FAILED)
