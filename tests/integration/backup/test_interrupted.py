"""`kill -9` during `bastion backup create`: no partial backup counts, the next run works."""

import os
import signal
import subprocess
import sys
import time

from tests.support.backup import insert_rows

DEADLINE_SECONDS = 60


def test_a_killed_backup_is_never_listed_and_the_next_run_works(settings, container, service):
    # ~60 MB of poorly compressible rows: the pipeline needs a few seconds for it.
    for start in range(10_000, 40_000, 5_000):
        insert_rows(container.engine, start, 5_000, body_bytes=2_000)
    env = {
        **os.environ,
        "BASTION_ENV": "test",
        "BASTION_DATA_DIR": str(settings.data_dir),
        "BASTION_BACKUP__ZSTD_THREADS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", "backup", "create"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        partial = None
        while time.monotonic() < deadline and process.poll() is None:
            found = list(settings.backup_dir.glob("bk-*/payload.bin.partial"))
            if found and found[0].stat().st_size > 2 * 1024 * 1024:
                partial = found[0]
                break
            time.sleep(0.01)
        assert partial is not None, "the backup finished before it could be interrupted"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    assert service.listing().good == ()
    assert [left.backup_id for left in service.target.leftovers()] == [partial.parent.name]

    created = service.create()
    assert [b.backup_id for b in service.listing().good] == [created.backup.backup_id]
    service.verify(created.backup.backup_id)
