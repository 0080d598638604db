"""`GET /healthz` through Bastion's whole HTTP stack over TLS, against a bare Starlette app.

Four server processes run side by side, each one Uvicorn worker with the settings `bastion serve`
uses (TLS with the same certificate and ciphers, httptools, uvloop, no Uvicorn access log):

- ``bare``: a Starlette app answering ``{"status":"ok"}``, no middleware (the baseline);
- ``fastapi``: plain FastAPI with the same route as Bastion's (``response_model=Health``) and no
  middleware, a reference point that separates FastAPI's own cost from Bastion's edge;
- ``bastion/info``: the real ``bastion serve`` at the default log level, so every request writes
  its JSON access-log line (to a file), as in production;
- ``bastion/warning``: the same with ``BASTION_LOG__LEVEL=warning``: the stack without the log line.

The load comes from another process over loopback: ``wrk`` with keep-alive, or, when wrk is not
installed, a Python generator (which takes more of the shared CPU than wrk, so its figures are
not comparable with wrk's; only the ratios are). Runs alternate between the servers and the
median of each is reported, so machine noise hits all four alike. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.support.server import ServerProcess, free_port

from bastion.api.schemas import Health
from bastion.cli.server import TLS12_CIPHERS, bind_socket
from bench.report import Figure, print_ratio

PATH = "/healthz"
THREADS = 2
CONNECTIONS = 50
RUN_SECONDS = 10
WARMUP_SECONDS = 3
ROUNDS = 3
STARTUP_TIMEOUT_SECONDS = 20
REPO_ROOT = Path(__file__).resolve().parent.parent

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    requests_per_second: float
    p99_ms: float
    errors: int


@dataclass(frozen=True, slots=True)
class Run:
    load: LoadResult
    cpu_us_per_request: float  # the server process's user+system CPU time; nan without /proc


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process so far (Linux /proc; nan elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_wrk(output: str) -> LoadResult:
    """Requests, requests/s, the p99 latency (``--latency``) and errors from wrk's report."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    count = re.search(r"^\s+(\d+) requests in ", output, re.MULTILINE)
    if rps is None or p99 is None or count is None:
        raise RuntimeError(f"cannot read wrk's report:\n{output}")
    errors = sum(
        int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )  # "Socket errors: connect 0, read 0, write 0, timeout 0"
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return LoadResult(
        requests=int(count.group(1)),
        requests_per_second=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * _TIME_UNITS_MS[p99.group(2)],
        errors=errors,
    )


def run_wrk(url: str, seconds: int, _cafile: Path) -> LoadResult:
    # wrk does not verify certificates; every server was checked with httpx before the load.
    argv = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    return parse_wrk(done.stdout)


def run_python_load(url: str, seconds: int, cafile: Path) -> LoadResult:
    argv = [sys.executable, "-m", "bench.bench_http", "load", url, str(cafile), str(seconds)]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=seconds + 30
    )
    return LoadResult(**json.loads(done.stdout))


LoadGenerator = Callable[[str, int, Path], LoadResult]


# --- the subprocess side: the reference servers and the Python load generator ------------------

REFERENCE_APPS = ("bare", "fastapi")


def bare_app() -> Starlette:
    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route(PATH, healthz)])


def fastapi_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH, response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    return app


def serve_reference(kind: str, port: int, cert: str, key: str) -> None:
    """A reference app under exactly `bastion serve`'s Uvicorn settings."""
    config = uvicorn.Config(
        bare_app() if kind == "bare" else fastapi_app(),
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_ciphers=TLS12_CIPHERS,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[bind_socket("127.0.0.1", port)])


async def _python_load(url: str, cafile: str, seconds: float) -> dict[str, float | int]:
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=cafile)
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0

    async def connection(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=context)
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                await reader.readexactly(int(match.group(1)) if match else 0)
                latencies.append(time.perf_counter() - sent)
                errors += not head.startswith(b"HTTP/1.1 2")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(started + seconds) for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "requests_per_second": len(latencies) / elapsed,
        "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1000,
        "errors": errors,
    }


# --- the parent side -----------------------------------------------------------------------------


class ReferenceServer:
    def __init__(self, kind: str, cert: Path, key: Path, log_path: Path) -> None:
        self.kind = kind
        self.cert = cert
        self.key = key
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ReferenceServer:
        argv = [sys.executable, "-m", "bench.bench_http", "serve", self.kind, str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*argv, str(self.cert), str(self.key)],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.url, verify=str(self.cert), timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.kind} server exited early:\n{self.log_path.read_text()}"
                    )
                try:
                    if client.get(PATH).status_code == 200:
                        return self
                except httpx.TransportError:
                    time.sleep(0.1)
        raise RuntimeError(f"{self.kind} server did not answer within {STARTUP_TIMEOUT_SECONDS}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _check_same_body(targets: Sequence[Target], cafile: Path) -> None:
    """Both stacks must answer the same JSON, and Bastion's must carry its edge headers."""
    for target in targets:
        response = httpx.get(target.url + PATH, verify=str(cafile), timeout=5)
        if response.status_code != 200 or response.json() != {"status": "ok"}:
            raise RuntimeError(f"{target.name} answered {response.status_code}: {response.text}")
        if target.name.startswith("bastion") and "x-request-id" not in response.headers:
            raise RuntimeError(f"{target.name} answered without the edge middleware's headers")


def measure(targets: Sequence[Target], load: LoadGenerator, cafile: Path) -> dict[str, list[Run]]:
    """Warm every server up, then ROUNDS rounds of one run each, alternating between them."""
    for target in targets:
        load(target.url + PATH, WARMUP_SECONDS, cafile)
    runs: dict[str, list[Run]] = {target.name: [] for target in targets}
    for round_number in range(1, ROUNDS + 1):
        for target in targets:
            cpu_before = cpu_seconds(target.pid)
            result = load(target.url + PATH, RUN_SECONDS, cafile)
            cpu_us = (cpu_seconds(target.pid) - cpu_before) / max(result.requests, 1) * 1e6
            runs[target.name].append(Run(result, cpu_us))
            errors = f", {result.errors} errors" if result.errors else ""
            print(
                f"  round {round_number}/{ROUNDS} {target.name:>15}: "
                f"{result.requests_per_second:8,.0f} req/s  p99 {result.p99_ms:6.2f} ms  "
                f"server CPU {cpu_us:5.0f} us/request{errors}",
                flush=True,
            )
    return runs


def report(runs: dict[str, list[Run]], how: str) -> None:
    def rps(name: str) -> Figure:
        value = statistics.median(run.load.requests_per_second for run in runs[name])
        return Figure(f"{name} /healthz", value, "req/s")

    def p99(name: str) -> Figure:
        return Figure(f"{name} p99", statistics.median(run.load.p99_ms for run in runs[name]), "ms")

    def cpu(name: str) -> Figure:
        value = statistics.median(run.cpu_us_per_request for run in runs[name])
        return Figure(f"{name} server CPU", value, "us/request")

    note = f"median of {ROUNDS}, {how}"
    for level in ("info", "warning"):
        print_ratio(rps(f"bastion/{level}"), rps("bare"), note=note)
        print_ratio(p99(f"bastion/{level}"), p99("bare"), note=note)
        print_ratio(cpu(f"bastion/{level}"), cpu("bare"), note="CPU per request, lower is better")
    print_ratio(cpu("fastapi"), cpu("bare"), note="FastAPI's own cost, no middleware")
    print_ratio(cpu("bastion/warning"), cpu("fastapi"), note="Bastion's edge over plain FastAPI")
    print_ratio(cpu("bastion/info"), cpu("bastion/warning"), note="the access-log line")
    errors = sum(run.load.errors for name in runs for run in runs[name])
    if errors:
        print(f"  note: {errors} socket errors or non-2xx answers during the runs", flush=True)


def _pid(process: subprocess.Popen[bytes] | None) -> int:
    if process is None:
        raise RuntimeError("server not started")
    return process.pid


def choose_load_generator() -> tuple[LoadGenerator, str]:
    if shutil.which("wrk"):
        return run_wrk, (
            f"wrk {THREADS} threads x {CONNECTIONS} connections x {RUN_SECONDS} s, TLS keep-alive"
        )
    print(
        "  NOTE: wrk is not installed (apt-get install wrk); using the Python load generator,"
        " which takes more CPU than wrk: compare its ratios, not its absolute figures.",
        flush=True,
    )
    return run_python_load, (
        f"PYTHON load generator, {CONNECTIONS} connections x {RUN_SECONDS} s, TLS keep-alive"
    )


def main() -> None:
    load, how = choose_load_generator()
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        servers = {
            level: ServerProcess(data_dir, env={"BASTION_LOG__LEVEL": level})
            for level in ("info", "warning")
        }
        servers["info"].init()
        cert, key = servers["info"].cert_file, data_dir / "tls" / "key.pem"
        references = {
            kind: ReferenceServer(kind, cert, key, Path(tmp) / f"{kind}.log")
            for kind in REFERENCE_APPS
        }
        try:
            for server in servers.values():
                server.start()
            for reference in references.values():
                reference.start()
            targets = [
                *(Target(kind, ref.url, _pid(ref.process)) for kind, ref in references.items()),
                *(
                    Target(f"bastion/{level}", server.base_url, _pid(server.process))
                    for level, server in servers.items()
                ),
            ]
            _check_same_body(targets, cert)
            report(measure(targets, load, cert), how)
        finally:
            for reference in references.values():
                reference.stop()
            for server in servers.values():
                server.stop()


def _subprocess_entry(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_http")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a reference app")
    serve.add_argument("kind", choices=REFERENCE_APPS)
    serve.add_argument("port", type=int)
    serve.add_argument("cert")
    serve.add_argument("key")
    load = commands.add_parser("load", help="the Python load generator; prints JSON")
    load.add_argument("url")
    load.add_argument("cafile")
    load.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve_reference(args.kind, args.port, args.cert, args.key)
    else:
        result = asyncio.run(_python_load(args.url, args.cafile, args.seconds))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _subprocess_entry(sys.argv[1:])
