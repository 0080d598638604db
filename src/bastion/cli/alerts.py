"""`bastion alerts test`: prove the alert path end to end (P15) by sending a test event."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from bastion.alerts import SecurityEvent, Severity
from bastion.alerts.query import delivery_status
from bastion.bootstrap import build, deliver_alerts, record_system_event
from bastion.cli.context import clear_failures, console, fail, settings_from

alerts_app = typer.Typer(help="Security-event alerts.", no_args_is_help=True)
SeverityName = Literal["info", "low", "medium", "high", "critical"]


@alerts_app.command("test")
def send_test(
    ctx: typer.Context,
    severity: Annotated[
        SeverityName, typer.Option(help="Severity of the test event (routing applies).")
    ] = "critical",
) -> None:
    """Record an ``alerts.test`` event and deliver it now; exit 1 unless every sink it is
    routed to took it. The event stays in the store, like any other."""
    container = build(settings_from(ctx))
    with clear_failures():
        with container.uow.begin() as session:
            stored = container.security_events.record(
                session,
                SecurityEvent(
                    type="alerts.test",
                    severity=Severity[severity.upper()],
                    subject="bastion alerts test",
                    details={"purpose": "a test of the alert sinks; no action needed"},
                ),
            )
            record_system_event(container, session, "alerts.tested", severity=severity)
        deliver_alerts(container)
        with container.uow.begin() as session:
            statuses = delivery_status(session, stored.id)
    if not statuses:
        fail(f"no alert sink receives severity {severity}: see alerts.sinks (docs/alerts.md)")
    for status in statuses:
        reason = f" ({status.last_error})" if status.last_error else ""
        console.print(f"{status.sink:32} {status.status}{reason}", highlight=False, markup=False)
    if any(status.status != "sent" for status in statuses):
        fail("some sinks did not take the test alert; pending ones are retried by the worker")
