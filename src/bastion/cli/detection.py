"""`bastion detection …`: operator commands on blocked sources and locked accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.bootstrap import build
from bastion.cli.context import clear_failures, console, fail, settings_from

detection_app = typer.Typer(
    help="Blocked sources and locked accounts (docs/detection.md).", no_args_is_help=True
)


@detection_app.command("blocks")
def blocks(ctx: typer.Context) -> None:
    """List the sources blocked now (credential stuffing or too many failures)."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                found = container.detection.blocks(session)
        finally:
            container.engine.dispose()
    if not found:
        console.print("no source is blocked")
    for block in found:
        console.print(
            f"{block.source}\t{block.reason}\tuntil {block.blocked_until.isoformat()}",
            markup=False,
            highlight=False,
        )


@detection_app.command("unblock")
def unblock(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The blocked address (IPv6: any in the /64).")],
) -> None:
    """End a source's block at once (e.g. an office behind one address). Audited."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                ended = container.detection.unblock(session, address=address, actor_user_id=None)
        finally:
            container.engine.dispose()
    console.print("unblocked" if ended else "that source was not blocked")


@detection_app.command("unlock")
def unlock(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
) -> None:
    """End an account's lock at once, a "this wasn't me" lock included. Audited."""
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                user_id = container.governance.directory.user_id_for_email(session, email)
                if user_id is None:
                    fail("no account has that address")
                released = container.detection.release(session, user_id=user_id, actor_user_id=None)
        finally:
            container.engine.dispose()
    console.print("unlocked" if released else "the account was not locked")
