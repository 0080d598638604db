"""The `bastion` command."""

from __future__ import annotations

import json
from typing import Any

import typer

from bastion import __version__
from bastion.bootstrap import build, initialise, issue_bootstrap_link
from bastion.bootstrap import migrate as migrate_schema
from bastion.cli.access import access_app
from bastion.cli.alerts import alerts_app
from bastion.cli.audit import audit_app
from bastion.cli.backup import backup_app
from bastion.cli.context import SettingsLoader, clear_failures, console, settings_from
from bastion.cli.db import db_app
from bastion.cli.detection import detection_app
from bastion.cli.jobs import jobs_app
from bastion.cli.keys import keys_app
from bastion.cli.users import users_app
from bastion.identity.first_operator import BOOTSTRAP_PATH
from bastion.kernel.redact import redact_url
from bastion.logs import configure_logging

app = typer.Typer(
    name="bastion",
    help="Bastion: a security-first multi-tenant backend that proves its own security policy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(access_app, name="access")
app.add_typer(jobs_app, name="jobs")
app.add_typer(alerts_app, name="alerts")
app.add_typer(users_app, name="users")
app.add_typer(detection_app, name="detection")
app.add_typer(keys_app, name="keys")
app.add_typer(backup_app, name="backup")
app.add_typer(db_app, name="db")


@app.callback()
def main(ctx: typer.Context) -> None:
    """Settings come from BASTION_* environment variables and the TOML file in BASTION_CONFIG."""
    ctx.obj = SettingsLoader()


@app.command()
def version() -> None:
    """Print the Bastion version."""
    console.print(__version__)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the data directory, master key (0600), TLS certificate and database schema.

    Safe to run again: existing keys and certificates are never overwritten.
    """
    settings = settings_from(ctx)
    with clear_failures():
        report = initialise(settings)
    console.print(f"data directory  {settings.data_dir.resolve()}")
    key_state = "created" if report.created_key else "kept"
    console.print(f"master key      {settings.key_file} ({key_state})")
    cert_state = "created" if report.created_certificate else "kept"
    console.print(f"certificate     {settings.cert_file} ({cert_state})")
    console.print(f"schema          {report.revision_before or 'empty'} -> {report.revision_after}")


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply pending database migrations (the same ones on SQLite and PostgreSQL)."""
    settings = settings_from(ctx)
    configure_logging(settings.log)
    with clear_failures():
        before, after = migrate_schema(build(settings))
    console.print(f"schema {before or 'empty'} -> {after}")


@app.command()
def serve(ctx: typer.Context) -> None:
    """Serve the HTTPS API on BASTION_HOST:BASTION_PORT (default https://127.0.0.1:8443).

    Refuses to start, with one line saying why, if the key file is missing or readable by others,
    the certificate is missing, the schema is not current, or the port is taken.
    """
    from bastion.cli.server import serve as run_server  # noqa: PLC0415 - keeps uvicorn out of other commands

    settings = settings_from(ctx)
    configure_logging(settings.log)
    with clear_failures():
        run_server(build(settings))


@app.command()
def bootstrap(ctx: typer.Context) -> None:
    """Issue a new first-operator bootstrap link (valid one hour); earlier links stop working."""
    settings = settings_from(ctx)
    with clear_failures():
        issued = issue_bootstrap_link(build(settings))
    console.print(f"{settings.base_url}{BOOTSTRAP_PATH}?token={issued.token}", soft_wrap=True)
    console.print(f"valid until {issued.expires_at.isoformat()}")


def _effective(ctx: typer.Context) -> dict[str, Any]:
    settings = settings_from(ctx)
    shown: dict[str, Any] = settings.model_dump(mode="json")
    shown["database_url"] = redact_url(settings.resolved_database_url)
    shown["paths"] = {
        "key_file": str(settings.key_file),
        "cert_file": str(settings.cert_file),
        "cert_key_file": str(settings.cert_key_file),
    }
    return shown


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON, secrets redacted."""
    console.print_json(json.dumps(_effective(ctx)))


def run() -> None:
    app()
