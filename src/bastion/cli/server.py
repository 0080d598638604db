"""`bastion serve`: preflight checks, the first-start bootstrap link, then Uvicorn over TLS."""

from __future__ import annotations

import errno
import socket
import ssl

import structlog
import uvicorn

from bastion.alerts.worker import DeliveryWorker
from bastion.api import create_app
from bastion.bootstrap import (
    Container,
    alert_delivery,
    issue_first_start_link,
    mail_dispatcher,
    preflight,
)
from bastion.errors import StartupError
from bastion.identity.first_operator import BOOTSTRAP_PATH
from bastion.jobs import scheduler_for
from bastion.jobs.catalog import PROCESS_HOLDER
from bastion.mail import MailWorker
from bastion.observability.collectors import refreshers_for
from bastion.observability.server import MetricsServer

# TLS 1.2 suites (TLS 1.3 suites are fixed by OpenSSL): forward secrecy and AEAD only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
SOCKET_BACKLOG = 2048

log = structlog.get_logger("bastion.serve")


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before anything else, so a taken port is one clear line instead of a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use; stop the other process or set "
                f"BASTION_PORT"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(SOCKET_BACKLOG)
    sock.set_inheritable(True)
    return sock


def _check_certificate(container: Container) -> None:
    settings = container.settings
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.cert_file, settings.cert_key_file)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(
            f"TLS certificate {settings.cert_file} or key {settings.cert_key_file} cannot be "
            f"used: {exc}"
        ) from None


def announce_bootstrap_link(container: Container) -> str | None:
    """On the very first start only: issue the bootstrap token and return the link to print."""
    issued = issue_first_start_link(container)
    if issued is None:
        return None
    return f"{container.settings.base_url}{BOOTSTRAP_PATH}?token={issued.token}"


def serve(container: Container) -> None:
    settings = container.settings
    preflight(container)
    _check_certificate(container)
    sock = bind_socket(settings.host, settings.port)
    link = announce_bootstrap_link(container)
    if link is not None:
        # Printed to the terminal only, never logged: the link is a credential.
        print(  # noqa: T201
            "\nFirst start: create the first operator account within one hour at\n"
            f"  {link}\nThis link is shown once and works once.\n",
            flush=True,
        )
    config = uvicorn.Config(
        create_app(container),
        ssl_certfile=str(settings.cert_file),
        ssl_keyfile=str(settings.cert_key_file),
        ssl_ciphers=TLS12_CIPHERS,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the edge middleware decides whom to believe
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )
    metrics = _metrics_server(container)
    log.info("serve.listening", url=settings.base_url, env=settings.env)
    scheduler = scheduler_for(container)
    if scheduler is not None:
        scheduler.start()
    mail_worker = _mail_worker(container)
    if mail_worker is not None:
        mail_worker.start()
    container.read_audit.start()
    alerts_worker = _alerts_worker(container)
    if alerts_worker is not None:
        alerts_worker.start()
    if metrics is not None:
        metrics.start()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        # After Uvicorn has drained its requests: commit the read events still queued.
        container.read_audit.close()
        if metrics is not None:
            metrics.stop()
        if alerts_worker is not None:
            alerts_worker.stop()
        if mail_worker is not None:
            mail_worker.stop()
        if scheduler is not None:
            scheduler.stop()


def _alerts_worker(container: Container) -> DeliveryWorker | None:
    """The thread delivering alerts, unless the operator leaves it to cron."""
    alerts = container.settings.alerts
    if not alerts.deliver_in_process:
        return None
    return DeliveryWorker(alert_delivery(container), poll_seconds=alerts.poll_seconds)


def _metrics_server(container: Container) -> MetricsServer | None:
    """The Prometheus listener, bound now so a taken port stops the start (StartupError)."""
    metrics = container.settings.metrics
    if not metrics.enabled:
        return None
    server = MetricsServer(
        host=metrics.host, port=metrics.port, refreshers=refreshers_for(container.engine)
    )
    log.info("serve.metrics", url=f"http://{metrics.host}:{server.port}/metrics")
    return server


def _mail_worker(container: Container) -> MailWorker | None:
    """The thread delivering queued mail, unless the operator leaves it to cron."""
    mail = container.settings.mail
    if not mail.deliver_in_process:
        return None
    return MailWorker(
        mail_dispatcher(container, holder=PROCESS_HOLDER),
        wake=container.mail_queue.pending,
        poll_seconds=mail.outbox_poll_seconds,
    )
