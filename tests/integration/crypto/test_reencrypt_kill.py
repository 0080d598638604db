"""A re-encryption pass killed with SIGKILL mid-way leaves every row readable, and resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

from sqlalchemy import MetaData, insert, select

from bastion.crypto import TableReencryptionTarget
from bastion.crypto.models import ReencryptionJob
from tests.integration.crypto.conftest import TENANT
from tests.integration.crypto.reencrypt_worker import BATCH_ROWS, PURPOSE, notes_table

ROWS = 400
KILL_AFTER_BATCHES = 4
WAIT_SECONDS = 60


def _rows(engine, table):
    with engine.connect() as connection:
        return {
            record_id: bytes(sealed)
            for record_id, sealed in connection.execute(
                select(table.c.id, table.c.sealed).where(table.c.tenant_id == TENANT)
            ).all()
        }


def _version(sealed):
    return int.from_bytes(sealed[2:6], "big")


def test_kill_9_mid_reencryption_then_resume(
    engine, database_url, keyring, make_keyring, master_key_file
):
    clock = keyring.clock
    table = notes_table(MetaData())
    table.metadata.create_all(engine)
    plaintexts = {f"note-{i:05d}": f"note number {i}".encode() for i in range(ROWS)}
    with engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {
                    "tenant_id": TENANT,
                    "id": record_id,
                    "sealed": keyring.seal(
                        TENANT, purpose=PURPOSE, record_id=record_id, plaintext=plaintext
                    ),
                }
                for record_id, plaintext in plaintexts.items()
            ],
        )
    keyring.rotate(TENANT)

    stderr_path = master_key_file.parent / "worker.err"
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.crypto.reencrypt_worker",
                database_url,
                str(master_key_file),
                TENANT,
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as worker,
    ):
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            batches = 0
            while batches < KILL_AFTER_BATCHES and time.monotonic() < deadline:
                line = worker.stdout.readline()
                if not line:
                    break
                batches += line.startswith("batch")
            assert batches == KILL_AFTER_BATCHES, stderr_path.read_text()
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert worker.returncode == -signal.SIGKILL

    # Mid-way: some rows at version 2, some still at 1, and every one of them readable.
    rows = _rows(engine, table)
    versions = {_version(sealed) for sealed in rows.values()}
    assert versions == {1, 2}
    fresh = make_keyring()
    for record_id, sealed in rows.items():
        opened = fresh.open(TENANT, purpose=PURPOSE, record_id=record_id, sealed=sealed)
        assert opened == plaintexts[record_id]
    with engine.connect() as connection:
        job = connection.execute(select(ReencryptionJob)).one()
    assert not job.finished
    assert BATCH_ROWS <= job.rows_done < ROWS

    # Resume in another process (this one), from the persisted cursor.
    resumed = make_keyring(reencrypt_batch_rows=BATCH_ROWS)
    resumed.register_target(TableReencryptionTarget(engine=engine, table=table, purpose=PURPOSE))
    (report,) = resumed.reencrypt(TENANT)
    assert report.finished
    assert report.rows_scanned <= ROWS - job.rows_done + BATCH_ROWS  # did not start over
    rows = _rows(engine, table)
    assert {_version(sealed) for sealed in rows.values()} == {2}

    clock.set(clock.now() + timedelta(minutes=5))
    resumed.retire(TENANT, 1)
    final = make_keyring()
    for record_id, sealed in rows.items():
        opened = final.open(TENANT, purpose=PURPOSE, record_id=record_id, sealed=sealed)
        assert opened == plaintexts[record_id]
