"""Signed checkpoints: create them, write them outside the database, send them to a webhook.

A checkpoint pins a chain's head hash (and, in exported files, every entry hash since the previous
checkpoint) under an Ed25519 signature. A database administrator can rewrite a whole chain and its
hashes, but cannot sign: the exported files then no longer match, and ``verify`` says where.

``Checkpointer.run()`` is the scheduled job (harmless if two instances run it at once: a checkpoint
is keyed by (chain, seq) and inserted with ON CONFLICT DO NOTHING; an existing export file is never
overwritten; a webhook receiver should treat (chain, seq) as idempotent). The database row is
written first and committed; file export and webhook delivery follow and are retried on every run
until they succeed, so a failure never loses a checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
import structlog
from sqlalchemy import Connection, Engine, Row, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bastion.audit import repository
from bastion.audit.canonical import (
    FORMAT_VERSION,
    GENESIS_HASH,
    SYSTEM_CHAIN,
    canonical_json,
    entries_digest,
    format_time,
    key_id_for,
    parse_time,
)
from bastion.audit.errors import InvalidAuditExport
from bastion.audit.events import CHAIN_ID_PATTERN
from bastion.audit.verify import CheckpointRecord, walk_batches
from bastion.kernel.clock import Clock
from bastion.settings import AuditSettings

CHECKPOINT_LINE_TYPE: Final = "checkpoint"
FILE_MODE: Final = 0o640
DIRECTORY_MODE: Final = 0o750

log = structlog.get_logger("bastion.audit")


class CheckpointSigner(Protocol):
    """The keyring's signing key (Ed25519)."""

    def sign(self, message: bytes) -> bytes: ...

    def signing_public_key(self) -> bytes: ...


def checkpoint_document(record: CheckpointRecord, *, include_hashes: bool = True) -> dict[str, Any]:
    """The JSON form written to files, export lines and webhooks."""
    document: dict[str, Any] = {
        "type": CHECKPOINT_LINE_TYPE,
        "v": FORMAT_VERSION,
        "chain": record.chain,
        "seq": record.seq,
        "head_hash": record.head_hash,
        "time": record.time,
        "prev_seq": record.prev_seq,
        "entries_digest": record.entries_digest,
        "key_id": record.key_id,
        "signature": base64.b64encode(record.signature).decode("ascii"),
    }
    if include_hashes and record.entry_hashes is not None:
        document["entry_hashes"] = list(record.entry_hashes)
    return document


def parse_checkpoint(document: Mapping[str, Any], *, source: str) -> CheckpointRecord:
    """A CheckpointRecord from its JSON form; raises InvalidAuditExport if malformed."""
    try:
        hashes = document.get("entry_hashes")
        record = CheckpointRecord(
            chain=_str(document["chain"]),
            seq=_int(document["seq"]),
            head_hash=_str(document["head_hash"]),
            time=_str(document["time"]),
            prev_seq=_int(document["prev_seq"]),
            entries_digest=_str(document["entries_digest"]),
            key_id=_str(document["key_id"]),
            signature=base64.b64decode(_str(document["signature"]), validate=True),
            source=source,
            entry_hashes=None if hashes is None else tuple(_str(h) for h in hashes),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidAuditExport(f"{source}: malformed checkpoint ({exc})") from None
    return record


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def record_from_row(
    row: Row[Any], *, entry_hashes: Sequence[str] | None = None
) -> CheckpointRecord:
    return CheckpointRecord(
        chain=row.chain_id,
        seq=int(row.seq),
        head_hash=row.head_hash,
        time=row.created_at,
        prev_seq=int(row.prev_seq),
        entries_digest=row.entries_digest,
        key_id=row.key_id,
        signature=base64.b64decode(row.signature),
        source=f"database checkpoint {row.chain_id}/{int(row.seq)}",
        entry_hashes=None if entry_hashes is None else tuple(entry_hashes),
    )


def is_safe_chain_id(chain: str) -> bool:
    """Whether ``chain`` can name a directory: chain ids read back from the database are not
    trusted to be what ``append`` accepted (``../x`` would escape the checkpoint directory)."""
    return chain == SYSTEM_CHAIN or CHAIN_ID_PATTERN.fullmatch(chain) is not None


def checkpoint_path(directory: Path, chain: str, seq: int) -> Path:
    """Where the checkpoint file goes; raises InvalidAuditExport for an unsafe chain id."""
    if not is_safe_chain_id(chain):
        raise InvalidAuditExport("a chain id in the database is not a safe file name")
    return directory / chain / f"{seq:012d}.json"


def load_checkpoint_files(
    directory: Path, chain: str
) -> tuple[list[CheckpointRecord], list[tuple[int, str]]]:
    """Every exported checkpoint of ``chain`` under ``directory``, and the unreadable ones as
    (seq from the file name, reason): a damaged evidence file is a finding, not a crash."""
    if not is_safe_chain_id(chain):
        return [], [(0, f"chain id {chain!r} is not a safe file name")]
    folder = directory / chain
    if not folder.is_dir():
        return [], []
    records: list[CheckpointRecord] = []
    problems: list[tuple[int, str]] = []
    for path in sorted(folder.glob("*.json")):
        seq = int(path.stem) if path.stem.isdigit() else 0
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise InvalidAuditExport(f"{path}: not a JSON object")
            record = parse_checkpoint(document, source=str(path))
        except (OSError, ValueError, InvalidAuditExport) as exc:
            problems.append((seq, f"{path}: unreadable checkpoint ({exc})"))
            continue
        if record.chain != chain or record.seq != seq:
            problems.append((seq, f"{path}: holds checkpoint {record.chain}/{record.seq}"))
            continue
        records.append(record)
    return records, problems


def write_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a synced temporary file and a rename.

    Never replaces an existing file (returns False): an exported checkpoint is evidence, and a
    later, different file for the same (chain, seq) must not destroy it.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    if path.exists():
        return False
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, FILE_MODE)
        # link() fails if the name appeared meanwhile (another instance): first writer wins.
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        Path(temporary).unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


@dataclass(frozen=True, slots=True)
class PublishReport:
    created: int
    exported: int
    delivered: int
    failed_deliveries: int


class Checkpointer:
    """Creates due checkpoints and publishes them (directory, optional webhook)."""

    def __init__(
        self,
        *,
        engine: Engine,
        signer: CheckpointSigner,
        clock: Clock,
        settings: AuditSettings,
        checkpoint_dir: Path,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._clock = clock
        self._settings = settings
        self._dir = checkpoint_dir
        self._http = http_client

    def run(self, *, force: bool = False) -> PublishReport:
        """The scheduled job: create due checkpoints (all with new events if ``force``), publish."""
        created = self.create_due(force=force)
        exported = self.export_pending()
        delivered, failed = self.deliver_pending()
        return PublishReport(len(created), exported, delivered, failed)

    def create_due(self, *, force: bool = False) -> list[CheckpointRecord]:
        """Sign and store a checkpoint for every chain that is due; returns those created."""
        with self._engine.connect() as connection:
            chains = repository.chain_ids(connection)
        created = []
        for chain in chains:
            if not is_safe_chain_id(chain):
                log.error("audit.chain_damaged", chain=repr(chain), kind="bad_chain_id")
                continue
            with self._engine.begin() as connection:
                record = self._create_for(connection, chain, force=force)
            if record is not None:
                created.append(record)
        return created

    def _create_for(
        self, connection: Connection, chain: str, *, force: bool
    ) -> CheckpointRecord | None:
        current = repository.head(connection, chain)
        if current is None:
            return None
        head_seq, head_hash = current
        last = repository.last_checkpoint(connection, chain)
        prev_seq = 0 if last is None else int(last.seq)
        if head_seq <= prev_seq or not (force or self._is_due(connection, chain, head_seq, last)):
            return None
        start_prev = GENESIS_HASH if last is None else str(last.head_hash)
        # Never sign over damage: a signature would launder it.
        segment = repository.stream_entry_batches(
            connection, chain, from_seq=prev_seq + 1, to_seq=head_seq
        )
        with closing(segment) as rows:
            walk = walk_batches(chain, rows, start_seq=prev_seq + 1, start_prev=start_prev)
        if walk.damage is not None or (walk.last_seq, walk.last_hash) != (head_seq, head_hash):
            damage = walk.damage
            log.error(
                "audit.chain_damaged",
                chain=chain,
                seq=damage.seq if damage else walk.last_seq + 1,
                kind=damage.kind.value if damage else "head_mismatch",
                stage="checkpoint",
            )
            return None
        hashes = repository.hashes_between(connection, chain, prev_seq, head_seq)
        public_key = self._signer.signing_public_key()
        unsigned = CheckpointRecord(
            chain=chain,
            seq=head_seq,
            head_hash=head_hash,
            time=format_time(self._clock.now()),
            prev_seq=prev_seq,
            entries_digest=entries_digest(hashes),
            key_id=key_id_for(public_key),
            signature=b"",
            source="new",
            entry_hashes=tuple(hashes),
        )
        signature = self._signer.sign(unsigned.message())
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(repository.CHECKPOINTS)
            .values(
                chain_id=chain,
                seq=head_seq,
                head_hash=head_hash,
                created_at=unsigned.time,
                prev_seq=prev_seq,
                entries_digest=unsigned.entries_digest,
                key_id=unsigned.key_id,
                signature=base64.b64encode(signature).decode("ascii"),
                webhook_attempts=0,
            )
            .on_conflict_do_nothing()
        )
        log.info("audit.checkpoint_created", chain=chain, seq=head_seq)
        return replace(unsigned, signature=signature, source="database")

    def _is_due(
        self, connection: Connection, chain: str, head_seq: int, last: Row[Any] | None
    ) -> bool:
        prev_seq = 0 if last is None else int(last.seq)
        if head_seq - prev_seq >= self._settings.checkpoint_every_events:
            return True
        oldest_unpinned = connection.scalar(
            select(repository.EVENTS.c.occurred_at).where(
                repository.EVENTS.c.chain_id == chain, repository.EVENTS.c.seq == prev_seq + 1
            )
        )
        if oldest_unpinned is None:
            return True  # the row is gone: sign what the head says so verify can compare
        age = self._clock.now() - parse_time(str(oldest_unpinned))
        return age >= timedelta(minutes=self._settings.checkpoint_every_minutes)

    def export_pending(self) -> int:
        """Write every not-yet-exported checkpoint to the directory; returns how many."""
        table = repository.CHECKPOINTS
        with self._engine.connect() as connection:
            pending = connection.execute(
                select(table).where(table.c.exported_at.is_(None)).order_by(table.c.seq)
            ).all()
        exported = 0
        for row in pending:
            if not is_safe_chain_id(row.chain_id):
                continue  # logged by create_due; never a path outside the directory
            with self._engine.begin() as connection:
                hashes = repository.hashes_between(connection, row.chain_id, row.prev_seq, row.seq)
                record = record_from_row(row, entry_hashes=hashes)
                if entries_digest(hashes) != record.entries_digest:
                    log.error(
                        "audit.chain_damaged", chain=row.chain_id, seq=row.seq, stage="export"
                    )
                    record = record_from_row(row)
                path = checkpoint_path(self._dir, record.chain, record.seq)
                data = (canonical_json(checkpoint_document(record)) + "\n").encode("utf-8")
                if not write_atomically(path, data) and path.read_bytes() != data:
                    log.error("audit.checkpoint_file_conflict", chain=row.chain_id, seq=row.seq)
                connection.execute(
                    update(table)
                    .where(table.c.chain_id == row.chain_id, table.c.seq == row.seq)
                    .values(exported_at=self._clock.now())
                )
                exported += 1
        return exported

    def deliver_pending(self) -> tuple[int, int]:
        """POST undelivered checkpoints to the webhook; returns (delivered, failed)."""
        url = self._settings.webhook_url
        if url is None:
            return 0, 0
        table = repository.CHECKPOINTS
        with self._engine.connect() as connection:
            pending = connection.execute(
                select(table).where(table.c.webhook_delivered_at.is_(None)).order_by(table.c.seq)
            ).all()
        delivered = failed = 0
        client = self._http or httpx.Client(timeout=self._settings.webhook_timeout_seconds)
        try:
            for row in pending:
                ok = self._post(client, url, record_from_row(row))
                values: dict[str, object] = {"webhook_attempts": table.c.webhook_attempts + 1}
                if ok:
                    values["webhook_delivered_at"] = self._clock.now()
                with self._engine.begin() as connection:
                    connection.execute(
                        update(table)
                        .where(table.c.chain_id == row.chain_id, table.c.seq == row.seq)
                        .values(values)
                    )
                delivered, failed = delivered + ok, failed + (not ok)
        finally:
            if self._http is None:
                client.close()
        return delivered, failed

    def _post(self, client: httpx.Client, url: str, record: CheckpointRecord) -> bool:
        try:
            response = client.post(
                url,
                json=checkpoint_document(record, include_hashes=False),
                timeout=self._settings.webhook_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
        else:
            if response.is_success:
                return True
            reason = f"HTTP {response.status_code}"
        log.warning(
            "audit.checkpoint_webhook_failed", chain=record.chain, seq=record.seq, reason=reason
        )
        return False
