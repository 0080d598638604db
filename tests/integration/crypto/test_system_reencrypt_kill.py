"""A system re-encryption pass killed with SIGKILL mid-way leaves every value readable, and
resumes from its saved cursors; then the old system data-key version can be retired."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

from sqlalchemy import select

from bastion.crypto.models import SYSTEM_JOB_OWNER, ReencryptionJob
from tests.integration.crypto.system_reencrypt_worker import BATCH_ROWS
from tests.integration.crypto.system_rows import (
    insert_rows,
    open_all,
    register_columns,
    sealed_values,
    version_of,
)

USERS = 150  # the first column (users.email_sealed, registered first) spans 8 batches
MAILS = 60
KILL_AFTER_BATCHES = 4
WAIT_SECONDS = 60


def _system_jobs(engine):
    with engine.connect() as connection:
        return connection.execute(
            select(ReencryptionJob).where(ReencryptionJob.tenant_id == SYSTEM_JOB_OWNER)
        ).all()


def test_kill_9_mid_system_reencryption_then_resume(
    engine, database_url, keyring, make_keyring, master_key_file
):
    clock = keyring.clock
    insert_rows(keyring, engine, users=USERS, mails=MAILS)
    register_columns(keyring, engine)
    plaintexts = open_all(keyring, engine)
    keyring.rotate_system_key()

    stderr_path = master_key_file.parent / "worker.err"
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.crypto.system_reencrypt_worker",
                database_url,
                str(master_key_file),
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

    # Mid-way: some values at version 2, the rest still at 1, and every one readable by a
    # process that has nothing cached.
    assert {version_of(sealed) for sealed in sealed_values(engine).values()} == {1, 2}
    assert open_all(make_keyring(), engine) == plaintexts
    (job,) = _system_jobs(engine)
    assert job.target == "system:users.email_sealed"
    assert not job.finished
    assert BATCH_ROWS <= job.rows_done < USERS

    # Resume in another process (this one), from the persisted cursor.
    resumed = make_keyring(reencrypt_batch_rows=BATCH_ROWS)
    register_columns(resumed, engine)
    reports = {report.target: report for report in resumed.reencrypt_system()}
    assert all(report.finished for report in reports.values())
    first = reports["system:users.email_sealed"]
    assert first.rows_scanned <= USERS - job.rows_done + BATCH_ROWS  # did not start over
    assert {version_of(sealed) for sealed in sealed_values(engine).values()} == {2}
    assert all(job.finished for job in _system_jobs(engine))

    clock.set(clock.now() + timedelta(minutes=5))
    resumed.retire_system_key(1)
    assert open_all(make_keyring(), engine) == plaintexts
