"""Verification of the chains in the database, and the scheduled job that alerts on damage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Final

import structlog
from sqlalchemy import Connection, Engine

from bastion.audit import repository
from bastion.audit.canonical import GENESIS_HASH
from bastion.audit.checkpoints import load_checkpoint_files, record_from_row
from bastion.audit.derived import derived_columns_intact, first_stale_row
from bastion.audit.verify import (
    ChainReport,
    Damage,
    DamageKind,
    Keys,
    Progress,
    VerifyReport,
    check_checkpoints,
    judge_chain,
    walk_batches,
)

log = structlog.get_logger("bastion.audit")
DAMAGED_EVENT: Final = "audit.chain_damaged"


class AuditVerifier:
    """Checks every chain (or one) against its head row, its database checkpoints and the
    exported checkpoint files. Read-only; safe to run while appends go on (snapshot read).

    Signatures are checked when ``keys`` holds the signing public keys; without them a forged
    checkpoint goes unnoticed, which the report states (``signatures_checked``).
    """

    def __init__(self, *, engine: Engine, keys: Keys, checkpoint_dir: Path | None) -> None:
        self._engine = engine
        self._keys = keys
        self._dir = checkpoint_dir

    def chains(self) -> list[str]:
        with self._engine.connect() as connection:
            found = set(repository.chain_ids(connection))
        if self._dir is not None and self._dir.is_dir():
            found.update(p.name for p in self._dir.iterdir() if p.is_dir())
        return sorted(found)

    def verify(
        self,
        chain: str | None = None,
        *,
        since: int | None = None,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Verify ``chain`` (every chain if None) from ``since`` (default: the first row).

        With ``since``, rows before it are trusted as they are: a quick incremental check, not a
        substitute for the full run.
        """
        chains = [chain] if chain is not None else self.chains()
        return VerifyReport(tuple(self._verify_chain(c, since or 1, progress) for c in chains))

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        # One consistent view of head, checkpoints and rows, or a concurrent append would look
        # like an inserted row.
        if self._engine.dialect.name == "postgresql":
            with (
                self._engine.connect().execution_options(
                    isolation_level="REPEATABLE READ"
                ) as connection,
                connection.begin(),
            ):
                yield connection
            return
        with self._engine.connect() as connection:
            # pysqlite opens no transaction for SELECTs; an explicit BEGIN pins the WAL snapshot.
            connection.exec_driver_sql("BEGIN")
            try:
                yield connection
            finally:
                connection.rollback()

    def _verify_chain(self, chain: str, start: int, progress: Progress | None) -> ChainReport:
        with self._snapshot() as connection:
            records = [record_from_row(row) for row in repository.checkpoints(connection, chain)]
            file_damage: list[Damage] = []
            if self._dir is not None:
                found, problems = load_checkpoint_files(self._dir, chain)
                records.extend(found)
                file_damage = [Damage(DamageKind.BAD_CHECKPOINT, seq, why) for seq, why in problems]
            findings = check_checkpoints(records, self._keys)
            findings.damage.extend(file_damage)
            start_prev = GENESIS_HASH
            if start > 1:
                start_prev = repository.hash_at(connection, chain, start - 1) or ""
            recorded_head = repository.head(connection, chain)
            # For the progress bar only: the head says how many rows there should be, without a
            # COUNT that would scan the chain once more.
            total = max(0, (recorded_head[0] if recorded_head else 0) - start + 1)
            if progress is not None:
                progress(chain, 0, total)
            batches = repository.stream_entry_batches(connection, chain, from_seq=start)
            with closing(batches) as rows:
                walk = walk_batches(
                    chain,
                    rows,
                    start_seq=start,
                    start_prev=start_prev,
                    pinned=findings.pinned,
                    progress=progress,
                    total=total,
                )
            if progress is not None:
                progress(chain, total, total)
            findings.damage.extend(self._stale_columns(connection, chain))
        return judge_chain(chain, walk, findings, recorded_head=recorded_head, keys=self._keys)

    @staticmethod
    def _stale_columns(connection: Connection, chain: str) -> list[Damage]:
        # The hash covers entry; the columns queries read must still be derived from it. A
        # catalogue read proves it for every row at once; only if it fails are rows compared.
        if derived_columns_intact(connection):
            return []
        seq = first_stale_row(connection, repository.EVENTS, chain)
        if seq is None:
            return []
        detail = (
            f"the columns of row {seq} differ from its hashed entry: the table's derived "
            "columns were redefined and edited"
        )
        return [Damage(DamageKind.EDITED, seq, detail)]


def run_scheduled_verification(verifier: AuditVerifier) -> VerifyReport:
    """The scheduled job: verify every chain; log an alert (level error) per damaged chain.

    Monitoring's alert sinks will subscribe to the ``audit.chain_damaged`` event when they exist.
    """
    report = verifier.verify()
    for chain in report.damaged:
        damage = chain.damage
        if damage is None:  # pragma: no cover - damaged implies a damage
            continue
        log.error(
            DAMAGED_EVENT,
            chain=chain.chain,
            seq=damage.seq,
            kind=damage.kind.value,
            detail=damage.detail,
        )
    if report.ok:
        log.info("audit.chains_verified", chains=len(report.chains))
    return report
