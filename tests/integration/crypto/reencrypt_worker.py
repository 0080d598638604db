"""A re-encryption pass in its own process, slowed down so a test can `kill -9` it mid-way.

Run as ``python -m tests.integration.crypto.reencrypt_worker DATABASE_URL KEY_FILE TENANT``.
Prints one line per persisted batch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import Column, LargeBinary, MetaData, String, Table

from bastion.crypto import Keyring, LocalKeyProvider, TableReencryptionTarget
from bastion.db import UnitOfWork, make_engine
from bastion.kernel.clock import SystemClock

PURPOSE = "records:notes"
BATCH_ROWS = 20
PAUSE_SECONDS = 0.05


def notes_table(metadata: MetaData) -> Table:
    return Table(
        "test_sealed_notes",
        metadata,
        Column("tenant_id", String(36), primary_key=True),
        Column("id", String(36), primary_key=True),
        Column("sealed", LargeBinary, nullable=False),
    )


class SlowTarget(TableReencryptionTarget):
    """Pauses after each committed store, before the keyring saves its cursor: a kill landing
    there leaves rows re-encrypted that the job does not know about yet."""

    def store(self, tenant, replacements):
        replaced = super().store(tenant, replacements)
        time.sleep(PAUSE_SECONDS)
        return replaced


def main(database_url: str, key_file: str, tenant: str) -> None:
    engine = make_engine(database_url)
    keyring = Keyring(
        uow=UnitOfWork(engine),
        provider=LocalKeyProvider(key_file=Path(key_file)),
        clock=SystemClock(),
        reencrypt_batch_rows=BATCH_ROWS,
    )
    keyring.register_target(
        SlowTarget(engine=engine, table=notes_table(MetaData()), purpose=PURPOSE)
    )

    def report(progress):
        print(f"batch {progress.rows_done_total}", flush=True)
        time.sleep(PAUSE_SECONDS)

    keyring.reencrypt(tenant, progress=report)
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
