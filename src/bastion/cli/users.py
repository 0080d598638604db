"""`bastion users …`: operator commands on accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.bootstrap import build
from bastion.cli.context import clear_failures, console, fail, settings_from
from bastion.identity import ClientInfo

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@users_app.command("disable")
def disable(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
    leave_ownerless: Annotated[
        bool,
        typer.Option(
            "--leave-ownerless",
            help="Disable even the last owner of a tenant (its members keep their roles).",
        ),
    ] = False,
) -> None:
    """Disable an account: its sessions end at once and it can no longer log in.

    Refused while the account is the last owner of a tenant (hand ownership on first), unless
    ``--leave-ownerless``: a tenant must keep an owner who can act.
    """
    settings = settings_from(ctx)
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                user_id = container.governance.directory.user_id_for_email(session, email)
                owned = (
                    [] if user_id is None else container.access.sole_owner_tenants(session, user_id)
                )
                if owned and not leave_ownerless:
                    slugs = ", ".join(tenant.slug for tenant in owned)
                    fail(
                        f"the account is the last owner of: {slugs}; make someone else an owner "
                        "first (or pass --leave-ownerless)"
                    )
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
