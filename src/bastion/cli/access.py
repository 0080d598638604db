"""`bastion access …`: access governance from the server's console.

``bastion access review --tenant T`` prints who can reach a tenant (members, roles, second
factors, last logins, API keys, stale entries), or writes it as CSV or JSON. Whoever runs this
already holds the database and the master key; the read is still recorded on the tenant's audit
chain (``access_review.read``, no actor), as every other access review.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.access.review import AccessReview, as_csv, as_json
from bastion.bootstrap import build
from bastion.cli.context import clear_failures, console, fail, settings_from
from bastion.identity import ClientInfo

access_app = typer.Typer(help="Tenant access governance.", no_args_is_help=True)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _when(value: object) -> str:
    return "-" if value is None else str(value)[:16].replace("T", " ")


def _table(review: AccessReview) -> Table:
    table = Table(title=f"Access review of {review.tenant_slug} ({review.tenant_id})")
    for column in ("kind", "user", "e-mail", "role", "2FA", "last login / use", "stale"):
        table.add_column(column)
    for m in review.members:
        role = m.role if m.custom_role is None else f"{m.custom_role} (custom)"
        table.add_row(
            "member",
            m.user_id,
            m.email or "-",
            role,
            "yes" if m.has_second_factor else "NO",
            _when(m.last_seen_at),
            "STALE" if m.stale else "",
        )
    for k in review.api_keys:
        table.add_row(
            "api key",
            k.user_id,
            f"{k.name} (…{k.tail})",
            " ".join(k.permissions),
            "",
            _when(k.last_used_at),
            "STALE" if k.stale else ("expired" if k.expired else ""),
        )
    return table


@access_app.command("review")
def review(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant's id or slug.")],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table (default), csv or json.")
    ] = OutputFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write CSV/JSON to this file instead of stdout."),
    ] = None,
) -> None:
    """List members, roles, second factors, last logins and API keys; flag stale entries."""
    settings = settings_from(ctx)
    if output is not None and output_format is OutputFormat.TABLE:
        fail("--output needs --format csv or json")
    with clear_failures():
        container = build(settings)
        try:
            with container.uow.begin() as session:
                found = container.governance.reviews.review(
                    session,
                    tenant_ref=tenant,
                    actor=None,
                    client=ClientInfo(),
                    export_format=output_format.value,
                )
        finally:
            container.engine.dispose()
    if output_format is OutputFormat.TABLE:
        console.print(_table(found))
        return
    text = (
        as_csv(found)
        if output_format is OutputFormat.CSV
        else json.dumps(as_json(found), indent=2) + "\n"
    )
    if output is None:
        typer.echo(text, nl=False)
        return
    # Personal data (addresses, login times): created owner-only, never briefly world-readable.
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    console.print(f"wrote {len(found.members)} members and {len(found.api_keys)} keys to {output}")
