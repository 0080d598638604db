"""A system re-encryption pass in its own process, slowed down so a test can `kill -9` it.

Run as ``python -m tests.integration.crypto.system_reencrypt_worker DATABASE_URL KEY_FILE``.
Registers every system-sealed column the way bootstrap does; prints one line per saved batch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bastion.crypto import Keyring, LocalKeyProvider, SystemSealedColumn
from bastion.db import UnitOfWork, make_engine
from bastion.kernel.clock import SystemClock
from tests.integration.crypto.system_rows import register_columns

BATCH_ROWS = 20
PAUSE_SECONDS = 0.05


class SlowColumn(SystemSealedColumn):
    """Pauses after each committed store, before the keyring saves its cursor: a kill landing
    there leaves rows re-encrypted that the job does not know about yet."""

    def store(self, replacements):
        replaced = super().store(replacements)
        time.sleep(PAUSE_SECONDS)
        return replaced


def main(database_url: str, key_file: str) -> None:
    engine = make_engine(database_url)
    keyring = Keyring(
        uow=UnitOfWork(engine),
        provider=LocalKeyProvider(key_file=Path(key_file)),
        clock=SystemClock(),
        reencrypt_batch_rows=BATCH_ROWS,
    )
    register_columns(keyring, engine, SlowColumn)

    def report(progress):
        print(f"batch {progress.target} {progress.rows_done_total}", flush=True)
        time.sleep(PAUSE_SECONDS)

    keyring.reencrypt_system(progress=report)
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
