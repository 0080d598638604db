"""`bastion db …`: the PostgreSQL application role (docs/operations.md, "PostgreSQL roles").

Runs as the owner (``database_url``): creates the role the HTTP server connects as
(``database.app_url``) and grants it exactly what row-level security expects.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bastion.cli.context import clear_failures, console, settings_from
from bastion.db import make_engine
from bastion.db.roles import app_role_problems, grant_app_role
from bastion.errors import StartupError

db_app = typer.Typer(help="PostgreSQL roles for row-level security.", no_args_is_help=True)


@db_app.command("grant-app-role")
def grant_app_role_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The application role, e.g. bastion_app.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Set the role's password from stdin.")
    ] = False,
) -> None:
    """Create NAME if missing (LOGIN, NOSUPERUSER, NOBYPASSRLS) and grant it SELECT, INSERT,
    UPDATE and DELETE on Bastion's tables (none on the keyring's). Idempotent: run it again
    after `bastion migrate`. Then set BASTION_DATABASE__APP_URL to a URL that logs in as NAME."""
    settings = settings_from(ctx)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with clear_failures():
        if password_stdin and not password:
            raise StartupError("--password-stdin: no password on stdin")
        engine = make_engine(settings.resolved_database_url)
        try:
            granted = grant_app_role(engine, name, password=password)
        finally:
            engine.dispose()
    console.print(f"role {name}: DML on {len(granted)} tables, no BYPASSRLS", soft_wrap=True)


@db_app.command("check-app-role")
def check_app_role_command(ctx: typer.Context) -> None:
    """Connect as database.app_url and say whether row-level security binds that role."""
    settings = settings_from(ctx)
    with clear_failures():
        app_url = settings.database.app_url
        if app_url is None:
            raise StartupError("database.app_url is not set: requests run as the owner")
        engine = make_engine(app_url.get_secret_value())
        try:
            problems = app_role_problems(engine)
        finally:
            engine.dispose()
        if problems:
            raise StartupError("; ".join(problems))
    console.print("the application role is bound by row-level security")
