"""Disk full under a write load, for a real server process, without root or special mounts.

The server (SQLite, WAL) stores encrypted records as fast as two writer threads send them. Its
soft ``RLIMIT_FSIZE`` is then lowered, through ``prlimit(2)``, to just above the size of its
largest database file: past that offset every ``write(2)`` fails with ``EFBIG``, which is what
SQLite sees on a full disk (Python ignores ``SIGXFSZ``, so the server is not killed: checked
below). A moment later the limit is raised again. Then:

- every answer during the shortage is a success or a quick 503/507 problem+json, never a 500,
  never a hung worker;
- every record acknowledged (201) at any time reads back whole; every record refused is absent
  (its indexed marker finds nothing), so nothing half-written is visible;
- the same process serves writes again once there is room (no restart), /readyz is ready, and
  ``bastion audit verify`` with the signing key passes.
"""

from __future__ import annotations

import resource
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery staple"
RECORDS = "/api/v1/tenants/full/collections/items/records"
WRITERS = 2
SLOWEST_ANSWER_SECONDS = 5.0  # anything slower while the disk is full is a hung worker
SHORTAGE_SECONDS = 20.0  # at most: the shortage ends soon after the first refusal
HEADROOM_BYTES = 8192  # above the largest database file: a page or two, then EFBIG
REFUSED = {503, 507}


@dataclass
class Ledger:
    acknowledged: dict[str, str] = field(default_factory=dict)  # marker -> record id
    refused: list[str] = field(default_factory=list)
    statuses: list[tuple[float, int, float, str]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # no answer (a transport error)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered_after(self, moment: float) -> bool:
        with self.lock:
            return any(started > moment for started, _, _, _ in self.statuses)


def _document(marker: str) -> dict[str, object]:
    return {"marker": marker, "payload": marker * 32, "n": len(marker)}


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", env=CHEAP_ARGON2_ENV)
    process.init()
    process.start()
    yield process
    process.stop()


def _prepare(server: ServerProcess) -> dict[str, str]:
    client = server.client
    owner = {"email": "full-owner@example.com", "password": PASSWORD}
    assert client.post("/api/v1/auth/signup", json=owner).status_code == 201
    token = client.post("/api/v1/auth/login", json=owner).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    tenant = client.post("/api/v1/tenants", json={"name": "Full", "slug": "full"}, headers=headers)
    assert tenant.status_code == 201, tenant.text
    collection = client.post(
        "/api/v1/tenants/full/collections",
        json={"name": "items", "indexed": ["marker"]},
        headers=headers,
        timeout=60,
    )
    assert collection.status_code == 201, collection.text
    return headers


def _write_until(
    server: ServerProcess, headers: dict[str, str], stop: threading.Event, ledger: Ledger
) -> None:
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=15) as client:
        while not stop.is_set():
            marker = secrets.token_hex(8)
            started = time.monotonic()
            try:
                response = client.post(RECORDS, json=_document(marker), headers=headers)
            except httpx.TransportError:
                with ledger.lock:
                    ledger.lost.append(marker)
                continue
            seconds = time.monotonic() - started
            with ledger.lock:
                content_type = response.headers.get("content-type", "")
                ledger.statuses.append((started, response.status_code, seconds, content_type))
                if response.status_code == 201:
                    ledger.acknowledged[marker] = response.json()["id"]
                else:
                    ledger.refused.append(marker)


def _database_files(server: ServerProcess) -> list[int]:
    return [
        path.stat().st_size
        for path in server.data_dir.glob("bastion.db*")
        if path.is_file() and not path.name.endswith("-shm")
    ]


def test_python_ignores_sigxfsz_so_a_file_size_limit_is_an_error_not_a_kill():
    # The whole test relies on it: with SIGXFSZ at its default action the server would die.
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN


def test_a_full_disk_refuses_writes_cleanly_loses_nothing_and_recovers(server, tmp_path):
    headers = _prepare(server)
    assert server.process is not None
    pid = server.process.pid
    unlimited = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    ledger, stop = Ledger(), threading.Event()
    threads = [
        threading.Thread(target=_write_until, args=(server, headers, stop, ledger))
        for _ in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        limit = max(_database_files(server)) + HEADROOM_BYTES
        full_at = time.monotonic()
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, unlimited[1]))
        deadline = full_at + SHORTAGE_SECONDS
        while time.monotonic() < deadline and not ledger.refused:
            time.sleep(0.1)
        time.sleep(1.0)  # let a few more writes meet the full disk
        freed_at = time.monotonic()
        resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)
        # At least 2 s, and until a write started a second after the space came back has been
        # answered (a fixed sleep could end first on a loaded machine, leaving none to check).
        settled = time.monotonic() + 2.0
        deadline = freed_at + 60
        while time.monotonic() < deadline and (
            time.monotonic() < settled or not ledger.answered_after(freed_at + 1.0)
        ):
            time.sleep(0.1)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert server.process.poll() is None, "the server died:\n" + server.output()[-3000:]
    statuses = ledger.statuses
    during = [s for s in statuses if full_at < s[0] < freed_at]
    after = [s for s in statuses if s[0] > freed_at + 1.0]
    assert ledger.refused, "the shortage refused nothing: the limit was not reached"
    assert not ledger.lost, f"{len(ledger.lost)} writes got no answer"
    for _started, status, seconds, content_type in statuses:
        assert status == 201 or status in REFUSED, (status, server.output()[-3000:])
        if status != 201:
            assert content_type == "application/problem+json", status
        assert seconds < SLOWEST_ANSWER_SECONDS, f"a worker hung for {seconds:.1f}s"
    assert after, "no write was answered after the shortage"
    assert all(status == 201 for _, status, _, _ in after), "no recovery without a restart"

    client = server.client
    for marker, record_id in ledger.acknowledged.items():
        read = client.get(f"{RECORDS}/{record_id}", headers=headers)
        assert read.status_code == 200, f"acknowledged record {record_id}: {read.text}"
        assert read.json()["data"] == _document(marker)
    for marker in ledger.refused:
        found = client.get(RECORDS, params={"filter[marker]": marker}, headers=headers)
        assert found.status_code == 200, found.text
        assert found.json()["items"] == [], f"refused record {marker} is visible"
    assert client.get("/readyz").status_code == 200

    key = tmp_path / "audit-signing.pem"
    exported = run_cli("keys", "export-public", env=server.env)
    assert exported.returncode == 0, exported.stderr
    key.write_text(exported.stdout)
    verified = run_cli("audit", "verify", "--public-key", str(key), env=server.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    refusals = sorted({status for _, status, _, _ in during if status != 201})
    print(
        f"\ndisk full: limit {limit} bytes; {len(statuses)} writes, {len(during)} during the "
        f"shortage ({len(ledger.refused)} refused with {refusals}), {len(after)} after, all "
        f"201; {len(ledger.acknowledged)} acknowledged records read back; audit verified"
    )
