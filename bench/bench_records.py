"""GET and POST of a 1 KiB record through Bastion's whole stack, against a bare FastAPI app.

Issue 7's figure: under load from a separate process (wrk, 50 connections, TLS keep-alive over
loopback), one record read and one record insert through everything Bastion does on that path
(TLS, the edge middleware, rate limits, bearer authentication, tenant resolution and permission,
encryption or decryption with the tenant's data key, the audit event: a group-committed read
event, or the write's own chained event) against a bare FastAPI app doing the same SELECT or
INSERT of the same row shape (id, tenant, collection, 1 KiB payload, version, times) with plain
``sqlite3`` (WAL, ``synchronous=FULL``, as Bastion runs SQLite) under the same Uvicorn settings.

Targets (issue 7): GET ratio >= 0.6, POST ratio >= 0.4. Also printed: p50/p99 latency and each
server's resident memory after the runs. Then once more with Bastion on PostgreSQL (a fresh
database on 127.0.0.1:5432), against the same bare app on SQLite and on PostgreSQL (psycopg).

Rate limits stay on, raised far above the offered load, so their cost is counted but they never
answer 429. Runs alternate between the servers and the median of ROUNDS is reported. Nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI, HTTPException, Response
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, free_port

from bastion.cli.server import TLS12_CIPHERS, bind_socket
from bench.bench_http import cpu_seconds
from bench.report import Figure, print_figure, print_ratio

CONNECTIONS = 50
THREADS = 2
RUN_SECONDS = 8
WARMUP_SECONDS = 2
ROUNDS = 3
STARTUP_TIMEOUT_SECONDS = 30
REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark password that is long enough"  # noqa: S105 - a throwaway bench account
# About 1 KiB of JSON, the shape of a typical customer record.
DOCUMENT: dict[str, Any] = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "plan": "enterprise",
    "notes": "x" * 900,
    "tags": ["vip", "eu"],
}
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
UNLIMITED = "100000000/minute"
_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


# --- the bare reference app (runs in its own process) --------------------------------------------


class _SqliteRows:
    """One sqlite3 connection per worker thread, as a bare app would hold them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()

    def connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            self.local.connection = connection
        return connection

    def insert(self, row: tuple[Any, ...]) -> None:
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        connection.execute("COMMIT")

    def get(self, record_id: str) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = (
            self.connection()
            .execute(
                "SELECT id, tenant_id, collection_id, payload, version, created_at, updated_at "
                "FROM records WHERE tenant_id = ? AND collection_id = ? AND id = ?",
                ("t1", "c1", record_id),
            )
            .fetchone()
        )
        return found


class _PostgresRows:
    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()

    def connection(self) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = psycopg.connect(self.url, autocommit=True)
            self.local.connection = connection
        return connection

    def insert(self, row: tuple[Any, ...]) -> None:
        self.connection().execute("INSERT INTO records VALUES (%s, %s, %s, %s, %s, %s, %s)", row)

    def get(self, record_id: str) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = (
            self.connection()
            .execute(
                "SELECT id, tenant_id, collection_id, payload, version, created_at, updated_at "
                "FROM records WHERE tenant_id = %s AND collection_id = %s AND id = %s",
                ("t1", "c1", record_id),
            )
            .fetchone()
        )
        return found


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (id VARCHAR(36) PRIMARY KEY, tenant_id VARCHAR(36), "
    "collection_id VARCHAR(36), payload TEXT, version INTEGER, created_at TEXT, updated_at TEXT)"
)


def bare_app(rows: _SqliteRows | _PostgresRows) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def _out(row: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "id": row[0],
            "data": json.loads(row[3]),
            "etag": f'"{row[4]}"',
            "created_at": row[5],
            "updated_at": row[6],
        }

    @app.post("/records", status_code=201)
    def create(document: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        row = (str(uuid.uuid4()), "t1", "c1", json.dumps(document), 1, now, now)
        rows.insert(row)
        return _out(row)

    @app.get("/records/{record_id}")
    def read(record_id: str) -> dict[str, Any]:
        row = rows.get(record_id)
        if row is None:
            raise HTTPException(404)
        return _out(row)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(status_code=200)

    return app


def serve_reference(kind: str, target: str, port: int, cert: str, key: str) -> None:
    rows: _SqliteRows | _PostgresRows
    if kind == "sqlite":
        rows = _SqliteRows(target)
        rows.connection().execute(SCHEMA)
    else:
        rows = _PostgresRows(target)
        rows.connection().execute(SCHEMA)
    config = uvicorn.Config(
        bare_app(rows),
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_ciphers=TLS12_CIPHERS,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http="httptools",
        loop="uvloop",
    )
    uvicorn.Server(config).run(sockets=[bind_socket("127.0.0.1", port)])


# --- the parent side -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    timeouts: int  # wrk gave up waiting (its 2 s default): an answer too slow, not a refusal
    socket_errors: int  # connect, read or write errors
    non_2xx: int  # answers the server gave that were not 2xx (a refusal, a 5xx)

    @property
    def errors(self) -> int:
        return self.timeouts + self.socket_errors + self.non_2xx

    def describe_errors(self) -> str:
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.timeouts, "timeouts"),
                (self.socket_errors, "socket errors"),
                (self.non_2xx, "non-2xx"),
            )
            if count
        ]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where wrk sends one kind of request: a URL plus the wrk Lua script that shapes it."""

    name: str
    url: str
    script: Path
    pid: int


def parse_wrk(output: str) -> Load:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's report:\n{output}")
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write) (\d+)", output))
    timeouts = re.search(r"timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(
        rps=float(rps.group(1)),
        p50_ms=float(p50.group(1)) * _TIME_UNITS_MS[p50.group(2)],
        p99_ms=float(p99.group(1)) * _TIME_UNITS_MS[p99.group(2)],
        timeouts=int(timeouts.group(1)) if timeouts else 0,
        socket_errors=socket_errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run_wrk(endpoint: Endpoint, seconds: int) -> Load:
    argv = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(endpoint.script),
        endpoint.url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return parse_wrk(done.stdout)


def wrk_script(path: Path, *, method: str, token: str | None, body: str | None) -> Path:
    lines = [f'wrk.method = "{method}"']
    if token is not None:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(body)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def resident_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


class Reference:
    def __init__(self, kind: str, target: str, cert: Path, key: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "bench.bench_records", "serve", kind, target]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*argv, str(self.port), str(cert), str(key)],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.url, verify=str(cert), timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"reference {kind} exited:\n{log.read_text()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"reference {kind} did not start")
            created = client.post("/records", json=DOCUMENT)
            created.raise_for_status()
            self.record_id = created.json()["id"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prepare_bastion(server: ServerProcess) -> tuple[str, str]:
    """A user, a tenant and a collection; returns (token, the id of one stored record)."""
    client = server.client
    client.post("/api/v1/auth/signup", json={"email": "bench@example.com", "password": PASSWORD})
    login = client.post(
        "/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
    )
    login.raise_for_status()
    token = login.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    client.post(
        "/api/v1/tenants", json={"name": "Bench", "slug": "bench"}, headers=headers
    ).raise_for_status()
    client.post(
        "/api/v1/tenants/bench/collections", json={"name": "customers"}, headers=headers
    ).raise_for_status()
    created = client.post(
        "/api/v1/tenants/bench/collections/customers/records", json=DOCUMENT, headers=headers
    )
    created.raise_for_status()
    read = client.get(
        f"/api/v1/tenants/bench/collections/customers/records/{created.json()['id']}",
        headers=headers,
    )
    if read.status_code != 200 or read.json()["data"] != DOCUMENT:
        raise RuntimeError(f"Bastion did not read the record back: {read.text}")
    return token, created.json()["id"]


def bastion_env(database_url: str | None) -> dict[str, str]:
    env = {
        **CHEAP_ARGON2_ENV,
        "BASTION_RATE_LIMITS__AUTH": UNLIMITED,
        "BASTION_RATE_LIMITS__WRITE": UNLIMITED,
        "BASTION_RATE_LIMITS__READ": UNLIMITED,
        "BASTION_RATE_LIMITS__DEFAULT": UNLIMITED,
    }
    if database_url is not None:
        env["BASTION_DATABASE_URL"] = database_url
    return env


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(endpoints: list[Endpoint]) -> dict[str, list[tuple[Load, float]]]:
    for endpoint in endpoints:
        run_wrk(endpoint, WARMUP_SECONDS)
    runs: dict[str, list[tuple[Load, float]]] = {e.name: [] for e in endpoints}
    for round_number in range(1, ROUNDS + 1):
        for endpoint in endpoints:
            cpu_before = cpu_seconds(endpoint.pid)
            load = run_wrk(endpoint, RUN_SECONDS)
            requests = max(load.rps * RUN_SECONDS, 1)
            cpu_us = (cpu_seconds(endpoint.pid) - cpu_before) / requests * 1e6
            runs[endpoint.name].append((load, cpu_us))
            errors = f"  {load.describe_errors()}" if load.errors else ""
            print(
                f"  round {round_number}/{ROUNDS} {endpoint.name:>22}: {load.rps:7,.0f} req/s  "
                f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
                f"server CPU {cpu_us:5.0f} us/request{errors}",
                flush=True,
            )
    return runs


def report(runs: dict[str, list[tuple[Load, float]]], bastion: str, bare: str, verb: str) -> None:
    def median(name: str, pick: Any) -> float:
        return statistics.median(pick(run) for run in runs[name])

    note = f"median of {ROUNDS}, wrk {THREADS}x{CONNECTIONS} connections, {RUN_SECONDS} s, TLS"
    print_ratio(
        Figure(f"{bastion} {verb} 1 KiB record", median(bastion, lambda r: r[0].rps), "req/s"),
        Figure(f"{bare} {verb}", median(bare, lambda r: r[0].rps), "req/s"),
        note=note,
    )
    for quantile in ("p50", "p99"):
        print_ratio(
            Figure(
                f"{bastion} {verb} {quantile}",
                median(bastion, lambda r, q=quantile: getattr(r[0], f"{q}_ms")),
                "ms",
            ),
            Figure(
                f"{bare} {verb} {quantile}",
                median(bare, lambda r, q=quantile: getattr(r[0], f"{q}_ms")),
                "ms",
            ),
            note="latency, lower is better",
        )
    for name in (bastion, bare):
        timeouts = sum(r[0].timeouts for r in runs[name])
        socket_errors = sum(r[0].socket_errors for r in runs[name])
        non_2xx = sum(r[0].non_2xx for r in runs[name])
        if timeouts or socket_errors or non_2xx:
            print(
                f"  note: {name}: {timeouts} wrk timeouts (2 s), {socket_errors} socket errors, "
                f"{non_2xx} non-2xx answers over {ROUNDS} runs",
                flush=True,
            )


def run_suite(tmp: Path, *, label: str, database_url: str | None, pg_reference: str | None) -> None:
    data_dir = tmp / f"data-{label}"
    server = ServerProcess(data_dir, env=bastion_env(database_url))
    server.init()
    cert, key = server.cert_file, data_dir / "tls" / "key.pem"
    references: dict[str, Reference] = {}
    try:
        server.start()
        token, record_id = prepare_bastion(server)
        references["bare/sqlite"] = Reference(
            "sqlite", str(tmp / f"bare-{label}.sqlite3"), cert, key, tmp / "bare-sqlite.log"
        )
        if pg_reference is not None:
            references["bare/postgresql"] = Reference(
                "postgresql", pg_reference, cert, key, tmp / "bare-pg.log"
            )
        body = json.dumps(DOCUMENT)
        base = f"{server.base_url}/api/v1/tenants/bench/collections/customers/records"
        pid = server.process.pid if server.process else 0
        name = f"bastion/{label}"
        endpoints = [
            Endpoint(
                f"{name} GET",
                f"{base}/{record_id}",
                wrk_script(tmp / "get.lua", method="GET", token=token, body=None),
                pid,
            ),
            Endpoint(
                f"{name} POST",
                base,
                wrk_script(tmp / "post.lua", method="POST", token=token, body=body),
                pid,
            ),
        ]
        for ref_name, reference in references.items():
            endpoints += [
                Endpoint(
                    f"{ref_name} GET",
                    f"{reference.url}/records/{reference.record_id}",
                    wrk_script(tmp / "bare-get.lua", method="GET", token=None, body=None),
                    reference.process.pid,
                ),
                Endpoint(
                    f"{ref_name} POST",
                    f"{reference.url}/records",
                    wrk_script(tmp / "bare-post.lua", method="POST", token=None, body=body),
                    reference.process.pid,
                ),
            ]
        runs = measure(endpoints)
        for ref_name in references:
            for verb in ("GET", "POST"):
                report(runs, f"{name} {verb}", f"{ref_name} {verb}", verb)
        print_figure(Figure(f"{name} resident memory", resident_mib(pid), "MiB"))
        for ref_name, reference in references.items():
            rss = resident_mib(reference.process.pid)
            print_figure(Figure(f"{ref_name} resident memory", rss, "MiB"))
    finally:
        for reference in references.values():
            reference.stop()
        server.stop()


def main() -> None:
    if not _have_wrk():
        print("  SKIPPED: wrk is not installed (apt-get install wrk)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bastion-bench-records-") as tmp_name:
        tmp = Path(tmp_name)
        print("-- on SQLite", flush=True)
        run_suite(tmp, label="sqlite", database_url=None, pg_reference=None)
        print("-- on PostgreSQL", flush=True)
        with postgres_database() as bastion_url, postgres_database() as bare_url:
            run_suite(
                tmp,
                label="postgresql",
                database_url=bastion_url,
                pg_reference=bare_url.replace("+psycopg", ""),
            )


def _have_wrk() -> bool:
    return any(
        os.access(os.path.join(directory, "wrk"), os.X_OK)
        for directory in os.environ.get("PATH", "").split(os.pathsep)
    )


def _subprocess_entry(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_records")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("kind", choices=("sqlite", "postgresql"))
    serve.add_argument("target")
    serve.add_argument("port", type=int)
    serve.add_argument("cert")
    serve.add_argument("key")
    args = parser.parse_args(argv)
    serve_reference(args.kind, args.target, args.port, args.cert, args.key)


if __name__ == "__main__":
    _subprocess_entry(sys.argv[1:])
