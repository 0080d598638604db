"""A loopback webhook receiver that checks Bastion's signatures the way a real receiver would."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bastion.alerts.webhook_verify import (
    SIGNATURE_HEADER,
    ReplayedWebhook,
    WebhookRejected,
    WebhookVerifier,
)

HANG_LIMIT_SECONDS = 10


@dataclass
class Captured:
    body: bytes
    headers: dict[str, str]
    status: int


@dataclass
class Receiver:
    """``mode``: "ok" (verify, 204/409/400), "hang" (never answer until released), "fail" (500)."""

    verifier: WebhookVerifier
    mode: str = "ok"
    accepted: list[dict] = field(default_factory=list)
    requests: list[Captured] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        if self.mode == "hang":
            self.release.wait(HANG_LIMIT_SECONDS)
            status = 503
        elif self.mode == "fail":
            status = 500
        else:
            try:
                self.accepted.append(
                    self.verifier.verify(body, headers.get(SIGNATURE_HEADER.lower()))
                )
                status = 204
            except ReplayedWebhook:
                status = 409
            except WebhookRejected:
                status = 400
        self.requests.append(Captured(body, headers, status))
        return status

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status = receiver.answer(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
