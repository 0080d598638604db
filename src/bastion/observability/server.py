"""The Prometheus listener: ``GET /metrics`` on its own host and port, plain HTTP.

Separate from the API so it can stay on loopback or a private network where a Prometheus server
scrapes it, and so a scrape never competes with API requests for the event loop. It serves the
text exposition format of Bastion's own registry, after running the scrape-time refreshers
(``collectors``). Nothing here is secret (counts and sequence numbers), but it does describe
activity: do not expose it publicly (docs/alerts.md, "Metrics").
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bastion.errors import StartupError
from bastion.observability.metrics import ALERTS, LOGINS, RATE_LIMITED, REGISTRY

log = structlog.get_logger("bastion.metrics")
METRICS_PATH: Final = "/metrics"
Refresher = Callable[[], None]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds would flood the log


def prime_series() -> None:
    """Create the labelled series that have fixed label values, so they read 0 rather than
    being absent before their first event (Prometheus ``rate()`` needs the 0)."""
    for outcome in ("ok", "failed", "locked", "blocked"):
        LOGINS.labels(outcome=outcome)
    for endpoint_class in ("auth", "write", "read", "default"):
        RATE_LIMITED.labels(endpoint_class=endpoint_class)
    for sink in ("webhook", "email", "stdout", "syslog"):
        for outcome in ("sent", "failed", "abandoned"):
            ALERTS.labels(sink=sink, outcome=outcome)


def metrics_app(refreshers: Sequence[Refresher]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH or environ.get("REQUEST_METHOD") != "GET":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        for refresh in refreshers:
            try:
                refresh()
            except Exception:  # a database hiccup must not hide every other metric
                name = getattr(refresh, "__name__", "refresher")
                log.warning("metrics.refresh_failed", refresher=name, exc_info=True)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(REGISTRY)]

    return app


class MetricsServer:
    """Binds at construction (a taken port is a one-line StartupError), serves after start()."""

    def __init__(self, *, host: str, port: int, refreshers: Sequence[Refresher]) -> None:
        prime_series()
        try:
            self._server = make_server(
                host,
                port,
                metrics_app(refreshers),
                server_class=_ThreadingServer,
                handler_class=_QuietHandler,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"metrics port {port} on {host} is already in use; set BASTION_METRICS__PORT"
                ) from None
            raise StartupError(f"cannot listen for metrics on {host}:{port}: {exc}") from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bastion-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
