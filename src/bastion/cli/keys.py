"""`bastion keys …`: master-key rotation, data-key rotation, re-encryption, retirement, shredding.

Thin: each command builds the container and calls one keyring method. Every command is safe to
re-run after an interruption (each operation is resumable and idempotent).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bastion.bootstrap import Container, build
from bastion.cli.context import clear_failures, console, fail, settings_from
from bastion.crypto import KeyProvider, LocalKeyProvider, ReencryptionReport, replace_key_file
from bastion.crypto.kms.pkcs11 import Pkcs11KeyProvider

keys_app = typer.Typer(
    help="Manage the master key and the data keys (rotation, re-encryption, shredding).",
    no_args_is_help=True,
)

TenantOption = Annotated[str | None, typer.Option("--tenant", help="The tenant id.")]
RequiredTenant = Annotated[str, typer.Option("--tenant", help="The tenant id.")]
SystemOption = Annotated[
    bool,
    typer.Option(
        "--system",
        help="The system data key (Bastion's own secrets: e-mail addresses, TOTP secrets, "
        "queued mail, invitations) instead of a tenant's.",
    ),
]


def _say(text: str) -> None:
    # One logical line per fact, unwrapped, so scripts and logs can grep it.
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _owner(tenant: str | None, system: bool) -> str | None:
    """The tenant id, or None for the system data key; exactly one of the two options."""
    if system == (tenant is not None):
        fail("give exactly one of --tenant <tenant id> or --system")
    return tenant


@contextmanager
def _container(ctx: typer.Context) -> Iterator[Container]:
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            yield container
        finally:
            container.engine.dispose()


@keys_app.command("rotate-kek")
def rotate_kek(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="The new master key (base64 of 32 bytes, mode 0600), e.g. from "
            "`head -c 32 /dev/urandom | base64`.",
        ),
    ] = None,
    new_key_label: Annotated[
        str | None,
        typer.Option(
            "--new-key-label",
            help="The label of a new AES-256 key in the configured PKCS#11 token "
            "(BASTION_CRYPTO__PKCS11__*): the master key moves into, or on within, the HSM.",
        ),
    ] = None,
) -> None:
    """Rewrap every stored key under a new master key, then install it (a file) or say which
    setting to change (a token label).

    Resumable: after an interruption run the same command again. Stop every `bastion serve` that
    uses this database first: a running server keeps the old key in memory.
    """
    if (new_key_file is None) == (new_key_label is None):
        fail("give exactly one of --new-key-file (a key file) or --new-key-label (a PKCS#11 key)")
    with _container(ctx) as container:
        settings = container.settings
        new: KeyProvider
        if new_key_label is not None:
            new = _token_provider(container, new_key_label)
        else:
            if settings.crypto.provider != "local" or new_key_file is None:
                fail("rotate-kek --new-key-file applies to the local provider only")
            new = LocalKeyProvider(key_file=new_key_file)
        new.check()
        with _progress() as progress:
            task = progress.add_task("rewrapping keys", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = container.keyring.rotate_kek(new, progress=advance)
        _say(
            f"rewrapped {report.rewrapped} keys: master key {report.old_key_id} -> "
            f"{report.new_key_id}"
        )
        if new_key_label is not None:
            _say(
                "now set BASTION_CRYPTO__PROVIDER=pkcs11 and "
                f"BASTION_CRYPTO__PKCS11__KEY_LABEL={new_key_label}, then restart Bastion; keep "
                "the old key in the token as long as backups made before this rotation must "
                "stay restorable"
            )
            return
        if new_key_file is None:  # pragma: no cover - one of the two was checked above
            return
        if settings.crypto.key_base64 is not None:
            _say(
                "now set BASTION_CRYPTO__KEY_BASE64 to the contents of "
                f"{new_key_file} and restart Bastion"
            )
            return
        if new_key_file.resolve() != settings.key_file.resolve():
            replace_key_file(settings.key_file, source=new_key_file)
            _say(f"installed the new master key as {settings.key_file}")
        _say(
            "keep a copy of the old master key only as long as backups made before this "
            "rotation must stay restorable"
        )


def _token_provider(container: Container, key_label: str) -> Pkcs11KeyProvider:
    """The configured token (module, token label, PIN) with the key under ``key_label``."""
    pkcs11 = container.settings.crypto.pkcs11
    if pkcs11.user_pin is None:
        fail("--new-key-label needs the token's PIN in BASTION_CRYPTO__PKCS11__USER_PIN")
    if container.settings.crypto.provider == "pkcs11" and key_label == pkcs11.key_label:
        fail(f"{key_label!r} is the key already configured; create a new key under a new label")
    return Pkcs11KeyProvider(
        module_path=pkcs11.module_path,
        token_label=pkcs11.token_label,
        key_label=key_label,
        user_pin=pkcs11.user_pin,
    )


@keys_app.command("rotate")
def rotate(ctx: typer.Context, tenant: TenantOption = None, system: SystemOption = False) -> None:
    """Start a new data-key version for the tenant (or the system); new writes use it at once."""
    owner = _owner(tenant, system)
    with _container(ctx) as container:
        if owner is None:
            version = container.keyring.rotate_system_key()
        else:
            version = container.keyring.rotate(owner)
    which, option = (
        ("system", "--system") if owner is None else (f"tenant {owner}", f"--tenant {owner}")
    )
    _say(
        f"{which}: data key version {version.version} is active; run "
        f"`bastion keys reencrypt {option}` to move older data to it"
    )


@keys_app.command("reencrypt")
def reencrypt(
    ctx: typer.Context, tenant: TenantOption = None, system: SystemOption = False
) -> None:
    """Re-encrypt the tenant's (or the system's) data under its active key version. Resumable
    after a crash: run it again and it continues from the last saved batch."""
    owner = _owner(tenant, system)
    with _container(ctx) as container:
        keyring = container.keyring
        stores = keyring.targets if owner is not None else keyring.system_columns
        if not stores:
            _say("no store of sealed data is registered; nothing to re-encrypt")
            return
        with _progress() as progress:
            task = progress.add_task("re-encrypting", total=None)

            def advance(report: ReencryptionReport) -> None:
                progress.update(
                    task,
                    description=f"re-encrypting {report.target}",
                    completed=report.rows_scanned,
                )

            if owner is None:
                reports = keyring.reencrypt_system(progress=advance)
            else:
                reports = keyring.reencrypt(owner, progress=advance)
    for report in reports:
        _say(
            f"{report.target}: {report.rows_reencrypted} re-encrypted of {report.rows_scanned} "
            f"scanned, now all at version >= {report.to_version}"
        )


@keys_app.command("retire")
def retire(
    ctx: typer.Context,
    version: Annotated[int, typer.Option("--version", min=1, help="The version to destroy.")],
    tenant: TenantOption = None,
    system: SystemOption = False,
) -> None:
    """Destroy a superseded data-key version once nothing uses it (refused, saying why, if not)."""
    owner = _owner(tenant, system)
    with _container(ctx) as container:
        if owner is None:
            container.keyring.retire_system_key(version)
        else:
            container.keyring.retire(owner, version)
    which = "system" if owner is None else f"tenant {owner}"
    _say(f"{which}: data key version {version} retired (destroyed)")


@keys_app.command("versions")
def versions(ctx: typer.Context, tenant: TenantOption = None, system: SystemOption = False) -> None:
    """List the tenant's (or the system's) data-key versions (no key material)."""
    owner = _owner(tenant, system)
    with _container(ctx) as container:
        if owner is None:
            found = container.keyring.system_key_versions()
        else:
            found = container.keyring.key_versions(owner)
    for item in found:
        _say(
            f"{item.version}\t{item.status}\t{item.encryptions_reserved} encryptions reserved\t"
            f"created {item.created_at.isoformat()}"
        )


@keys_app.command("export-public")
def export_public(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the PEM here instead of stdout.")
    ] = None,
) -> None:
    """Print the Ed25519 signing public key (PEM), for verifying checkpoints and manifests."""
    with _container(ctx) as container:
        pem = container.keyring.signing_public_key_pem()
    if output is None:
        typer.echo(pem.decode(), nl=False)
        return
    output.write_bytes(pem)
    _say(f"wrote {output}")


@keys_app.command("shred")
def shred(
    ctx: typer.Context,
    tenant: RequiredTenant,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Crypto-shred a tenant: destroy its data keys for good and record it in the erasure ledger."""
    if not yes:
        typer.confirm(
            f"Destroy every data key of tenant {tenant}? Its data becomes unreadable forever",
            abort=True,
        )
    with _container(ctx) as container:
        receipt = container.keyring.shred_tenant(tenant)
    _say(
        f"tenant {tenant} erased at {receipt.erased_at.isoformat()} "
        f"({receipt.versions_destroyed} key versions destroyed)"
    )
