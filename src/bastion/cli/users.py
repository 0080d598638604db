"""`bastion users …`: operator commands on accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.bootstrap import build
from bastion.cli.context import clear_failures, console, settings_from
from bastion.identity import ClientInfo

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@users_app.command("disable")
def disable(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
) -> None:
    """Disable an account: its sessions end at once and it can no longer log in."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                container.identity.disable_user(
                    session, email=email, actor_user_id=None, client=ClientInfo()
                )
        finally:
            container.engine.dispose()
    console.print("disabled; every session of the account has ended")


@users_app.command("revoke-sessions")
def revoke_sessions(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The account's e-mail address or id.")],
) -> None:
    """End every session and API key of an account at once (it can log in again)."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                revoked = container.identity.revoke_user_sessions(
                    session, user=user, actor_user_id=None, client=ClientInfo()
                )
        finally:
            container.engine.dispose()
    console.print(
        f"revoked {revoked.sessions} session(s) and {revoked.other_credentials} API key(s)"
    )
