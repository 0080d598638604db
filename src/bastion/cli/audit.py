"""`bastion audit …`: verify the chains (database or an export file) and export a tenant's chain."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bastion.audit import (
    SYSTEM_CHAIN,
    AuditVerifier,
    Keys,
    VerifyReport,
    export_lines,
    load_public_key_pem,
    verify_export,
)
from bastion.audit.errors import InvalidAuditExport
from bastion.audit.events import chain_for
from bastion.audit.verify import Progress as ProgressCallback
from bastion.bootstrap import Container, audit_keys_for, build, checkpointer
from bastion.cli.context import clear_failures, console, error_console, fail, settings_from
from bastion.crypto.errors import CryptoError
from bastion.errors import AppError, StartupError
from bastion.kernel.clock import SystemClock

EXIT_DAMAGED: Final = 1
CHECKPOINTS_BESIDE_EXPORT: Final = "audit-checkpoints"

audit_app = typer.Typer(
    help="Verify and export the tamper-evident audit log.", no_args_is_help=True
)

TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Tenant id, or 'system' for Bastion's own chain.")
]
FileOption = Annotated[
    Path | None, typer.Option("--file", help="Verify this export (JSON Lines) offline instead.")
]
PublicKeyOption = Annotated[
    Path | None, typer.Option("--public-key", help="The audit signing public key (PEM).")
]
CheckpointsOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="Directory of exported checkpoint files (default: the configured directory, or "
        "'audit-checkpoints' beside the export file).",
    ),
]


def _chain(tenant: str) -> str:
    return SYSTEM_CHAIN if tenant == SYSTEM_CHAIN else chain_for(tenant)


def _keys(public_key_file: Path | None) -> Keys:
    if public_key_file is None:
        return Keys()
    try:
        public_key = load_public_key_pem(public_key_file.read_bytes())
    except OSError as exc:
        raise InvalidAuditExport(f"{public_key_file}: cannot read ({exc.strerror})") from None
    return audit_keys_for(public_key)


def _keyring_keys(container: Container) -> Keys:
    """The installation's own signing key, derived under the master key (not read from the
    database, which an administrator could swap). Unavailable: signatures go unchecked."""
    try:
        return audit_keys_for(container.keyring.signing_public_key())
    except (CryptoError, StartupError, AppError) as exc:
        error_console.print(f"warning: the signing key is unavailable ({exc})", highlight=False)
        return Keys()


@contextmanager
def _progress_bar() -> Iterator[ProgressCallback]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=error_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(chain: str, done: int, total: int) -> None:
        if chain not in tasks:
            tasks[chain] = progress.add_task(f"chain {chain}", total=total or None)
        progress.update(tasks[chain], completed=done, total=total or None)

    with progress:
        yield update


def _print_report(report: VerifyReport) -> None:
    for chain in report.chains:
        if chain.damage is None:
            signed = (
                f"signed through {chain.signed_through_seq}"
                if chain.signatures_checked
                else "signatures NOT checked"
            )
            console.print(
                f"ok       chain {chain.chain}: {chain.entries_checked} entries, "
                f"{chain.checkpoints_checked} checkpoints, {signed}",
                highlight=False,
            )
        else:
            damage = chain.damage
            console.print(
                f"DAMAGED  chain {chain.chain}: first bad sequence number {damage.seq} "
                f"({damage.kind.value}): {damage.detail}",
                highlight=False,
                soft_wrap=True,
            )
    if not any(chain.signatures_checked for chain in report.chains) and report.chains:
        error_console.print(
            "warning: no public key given, checkpoint signatures were not checked "
            "(pass --public-key)",
            highlight=False,
        )


@audit_app.command("verify")
def verify(
    ctx: typer.Context,
    tenant: TenantOption = None,
    file: FileOption = None,
    public_key: PublicKeyOption = None,
    checkpoints: CheckpointsOption = None,
) -> None:
    """Check every chain and checkpoint; name the first bad event. Exit status 1 on damage."""
    with clear_failures():
        keys = _keys(public_key)
        if file is not None:
            if not keys.enabled:
                fail("--file needs --public-key: without it an export proves nothing")
            beside = file.parent / CHECKPOINTS_BESIDE_EXPORT
            directory = checkpoints or (beside if beside.is_dir() else None)
            with _progress_bar() as progress:
                report = verify_export(file, keys, checkpoint_dir=directory, progress=progress)
        else:
            settings = settings_from(ctx)
            container = build(settings)
            if not keys.enabled:
                keys = _keyring_keys(container)
            verifier = AuditVerifier(
                engine=container.engine,
                keys=keys,
                checkpoint_dir=checkpoints or settings.audit_checkpoint_dir,
            )
            chain = None if tenant is None else _chain(tenant)
            try:
                with _progress_bar() as progress:
                    report = verifier.verify(chain, progress=progress)
            finally:
                container.engine.dispose()
    _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_DAMAGED)


@audit_app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Checkpoint every chain with new events now.")
    ] = False,
) -> None:
    """Run the checkpoint job once: sign due checkpoints, export them, deliver the webhook."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            report = checkpointer(container).run(force=force)
        finally:
            container.engine.dispose()
    console.print(
        f"checkpoints created {report.created}, exported {report.exported}, "
        f"delivered {report.delivered}, delivery failures {report.failed_deliveries}",
        highlight=False,
    )


@audit_app.command("public-key")
def public_key(ctx: typer.Context) -> None:
    """Print the checkpoint signing public key (PEM), for customers' offline verification."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            pem = container.keyring.signing_public_key_pem()
        finally:
            container.engine.dispose()
    sys.stdout.write(pem.decode("ascii"))


@audit_app.command("export")
def export(ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant")]) -> None:
    """Write the tenant's chain as JSON Lines to standard output (events and checkpoints)."""
    settings = settings_from(ctx)
    with clear_failures():
        chain = _chain(tenant)
        container = build(settings)
        try:
            with container.engine.connect() as connection:
                for line in export_lines(connection, chain, now=SystemClock().now()):
                    sys.stdout.write(line + "\n")
        finally:
            container.engine.dispose()
    sys.stdout.flush()
