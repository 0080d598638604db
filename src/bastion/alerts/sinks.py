"""The places alerts go: signed webhooks, e-mail, JSON lines on stdout or syslog.

Every sink takes one ``Alert`` and either returns (delivered) or raises AlertDeliveryFailed with a
short, secret-free reason that the worker stores and retries on. Sinks are called only by the
delivery worker, never from a request.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from logging.handlers import SysLogHandler
from typing import Any, Final, Protocol, TextIO

import httpx

from bastion import __version__
from bastion.alerts.errors import AlertDeliveryFailed
from bastion.alerts.types import SecurityEvent, Severity
from bastion.alerts.webhook_verify import SIGNATURE_HEADER, signature_header
from bastion.kernel.clock import Clock
from bastion.mail import MailError, Outbox, OutgoingMail
from bastion.settings import (
    AlertSinkSettings,
    EmailSinkSettings,
    StdoutSinkSettings,
    SyslogSinkSettings,
    WebhookSinkSettings,
)

EVENT_ID_HEADER: Final = "Bastion-Event-Id"
USER_AGENT: Final = f"Bastion-Alerts/{__version__}"
# 409 from a receiver means "this event id was already accepted" (see webhook_verify).
ALREADY_DELIVERED: Final = 409
_SYSLOG_LEVELS: Final = {
    Severity.INFO: logging.INFO,
    Severity.LOW: logging.INFO,
    Severity.MEDIUM: logging.WARNING,
    Severity.HIGH: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One event on its way to one sink (``attempt`` counts from 1)."""

    event_id: str
    occurred_at: datetime
    event: SecurityEvent
    attempt: int


def alert_document(alert: Alert) -> dict[str, Any]:
    """The JSON every sink sends: the event, with its severity by name and its time in UTC."""
    event = alert.event
    return {
        "id": alert.event_id,
        "type": event.type,
        "severity": event.severity.label,
        "subject": event.subject,
        "source": event.source,
        "tenant_id": event.tenant_id,
        "occurred_at": alert.occurred_at.isoformat().replace("+00:00", "Z"),
        "details": dict(event.details),
    }


def alert_json(alert: Alert) -> str:
    # ensure_ascii: one line whatever the details hold; no raw control character can break it.
    return json.dumps(alert_document(alert), sort_keys=True, separators=(",", ":"))


class Sink(Protocol):
    kind: str

    def send(self, alert: Alert) -> None: ...


class WebhookSink:
    """POSTs the alert as JSON with a ``Bastion-Signature`` header (HMAC-SHA256, timestamped).

    Each phase (connect, write, read, pool) is bounded by the sink's timeout; the response body
    is never read; redirects are not followed (a redirect is a failure, retried).
    """

    kind = "webhook"

    def __init__(self, settings: WebhookSinkSettings, *, client: httpx.Client, clock: Clock):
        self._url = settings.url
        self._secret = settings.secret.get_secret_value().encode("utf-8")
        self._timeout = httpx.Timeout(settings.timeout_seconds)
        self._client = client
        self._clock = clock

    def send(self, alert: Alert) -> None:
        body = alert_json(alert).encode("utf-8")
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(self._secret, body, timestamp),
            EVENT_ID_HEADER: alert.event_id,
        }
        try:
            with self._client.stream(
                "POST", self._url, content=body, headers=headers, timeout=self._timeout
            ) as response:
                status = response.status_code
        except httpx.TimeoutException as exc:
            raise AlertDeliveryFailed("webhook timed out") from exc
        except httpx.HTTPError as exc:
            raise AlertDeliveryFailed(f"webhook unreachable ({type(exc).__name__})") from exc
        if not (200 <= status < 300 or status == ALREADY_DELIVERED):
            raise AlertDeliveryFailed(f"webhook answered HTTP {status}")


class EmailSink:
    """One plain-text message per recipient through the configured mail transport."""

    kind = "email"

    def __init__(self, settings: EmailSinkSettings, *, outbox: Outbox, clock: Clock) -> None:
        self._recipients = settings.recipients
        self._outbox = outbox
        self._clock = clock

    def send(self, alert: Alert) -> None:
        event = alert.event
        subject = f"[Bastion] {event.severity.label.upper()} security event: {event.type}"
        body = (
            f"Bastion recorded a {event.severity.label} security event.\n\n"
            f"{json.dumps(alert_document(alert), indent=2, sort_keys=True)}\n"
        )
        now = self._clock.now()
        try:
            for recipient in self._recipients:
                self._outbox.send(OutgoingMail(recipient, subject, body), now=now)
        except MailError as exc:
            raise AlertDeliveryFailed(f"e-mail not sent ({exc.code})") from exc


class StdoutSink:
    """One JSON line per alert on standard output (structured logs go to standard error)."""

    kind = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        line = json.dumps({"bastion_security_event": alert_document(alert)}, sort_keys=True)
        stream = self._stream or sys.stdout
        try:
            with self._lock:
                stream.write(line + "\n")
                stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken pipe
            raise AlertDeliveryFailed("stdout not writable") from exc


class _RaisingSysLogHandler(SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802, ARG002 - logging API
        # The stdlib prints and swallows send errors; the worker must see them to retry.
        raise  # noqa: PLE0704 - re-raises the send error emit() is handling


class SyslogSink:
    """One JSON line per alert to a syslog daemon over UDP or TCP (facility from settings).

    A socket per alert: alerts are rare, and nothing stays open between them."""

    kind = "syslog"

    def __init__(self, settings: SyslogSinkSettings) -> None:
        self._address = (settings.host, settings.port)
        self._socktype = socket.SOCK_DGRAM if settings.protocol == "udp" else socket.SOCK_STREAM
        self._facility = SysLogHandler.facility_names[settings.facility]

    def send(self, alert: Alert) -> None:
        record = logging.LogRecord(
            name="bastion.alerts",
            level=_SYSLOG_LEVELS[alert.event.severity],
            pathname=__file__,
            lineno=0,
            msg="bastion: %s",
            args=(alert_json(alert),),
            exc_info=None,
        )
        handler: _RaisingSysLogHandler | None = None
        try:
            handler = _RaisingSysLogHandler(
                address=self._address, facility=self._facility, socktype=self._socktype
            )
            handler.emit(record)
        except OSError as exc:
            raise AlertDeliveryFailed(f"syslog unreachable ({exc.strerror})") from exc
        finally:
            if handler is not None:
                handler.close()


def build_sinks(
    settings: tuple[AlertSinkSettings, ...],
    *,
    outbox: Outbox,
    client: httpx.Client,
    clock: Clock,
) -> Mapping[str, Sink]:
    """One sink object per configured sink, by name."""
    sinks: dict[str, Sink] = {}
    for sink in settings:
        if isinstance(sink, WebhookSinkSettings):
            sinks[sink.name] = WebhookSink(sink, client=client, clock=clock)
        elif isinstance(sink, EmailSinkSettings):
            sinks[sink.name] = EmailSink(sink, outbox=outbox, clock=clock)
        elif isinstance(sink, StdoutSinkSettings):
            sinks[sink.name] = StdoutSink()
        else:
            sinks[sink.name] = SyslogSink(sink)
    return sinks
