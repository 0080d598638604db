"""A real Bastion server process over TLS, for end-to-end tests.

``ServerProcess`` runs ``bastion init`` and then ``bastion serve`` in a subprocess on a free port,
waits for ``/healthz`` and hands out an ``httpx.Client`` that verifies the server's certificate.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

# Generous: a start takes ~2 s on a quiet machine, but 20-30 s when the two CPUs are shared
# with several test runs; the wait ends as soon as /healthz answers.
STARTUP_TIMEOUT_SECONDS = 90
# Every test client speaks from 127.0.0.1: the production limits on requests and logins per
# address and on accounts failing from one address would make unrelated tests (and the HTTP
# benchmarks, which use these servers) refuse each other. The layers stay in the request path.
# A test about those limits (tests/e2e/test_detection.py) passes its own values, which win.
GENEROUS_DETECTION_ENV = {
    "BASTION_RATE_LIMITS__AUTH": "100000/minute",
    "BASTION_RATE_LIMITS__WRITE": "10000000/minute",
    "BASTION_RATE_LIMITS__READ": "10000000/minute",
    "BASTION_RATE_LIMITS__DEFAULT": "10000000/minute",
    "BASTION_DETECTION__SOURCE_FAILURE_LIMIT": "100000",
    "BASTION_DETECTION__STUFFING_ACCOUNT_LIMIT": "10000",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without any BASTION_* leaking from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_LOG__LEVEL"] = "info"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServerProcess:
    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            "BASTION_DATA_DIR": str(data_dir),
            "BASTION_PORT": str(self.port),
            "BASTION_ENV": "test",
            **GENEROUS_DETECTION_ENV,
            **(env or {}),
        }
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @property
    def cert_file(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    def init(self) -> subprocess.CompletedProcess[str]:
        result = run_cli("init", env=self.env)
        if result.returncode != 0:
            raise RuntimeError(f"bastion init failed: {result.stderr}")
        return result

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start `bastion serve` without waiting; output goes to ``log_path``."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bastion", "serve"],
                env=clean_environment(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.process

    def start(self) -> ServerProcess:
        self.spawn()
        try:
            return self._wait_healthy()
        except Exception:
            self.stop()
            raise

    def _wait_healthy(self) -> ServerProcess:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {STARTUP_TIMEOUT_SECONDS}s")

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts exactly this server's self-signed certificate, and checks the host name."""
        return ssl.create_default_context(cafile=str(self.cert_file))

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url, verify=self.ssl_context(), timeout=10
            )
        return self._client

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_exit(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
