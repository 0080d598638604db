"""Signed checkpoints: when they are due, where they go, and that nothing loses them."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from bastion.audit import Checkpointer
from bastion.audit.canonical import checkpoint_message, entries_digest, key_id_for
from bastion.audit.checkpoints import checkpoint_path, load_checkpoint_files, write_atomically
from bastion.audit.models import AuditCheckpointRow
from bastion.settings import AuditSettings
from tests.integration.audit.conftest import TENANT, append_many
from tests.support.audit import verify_ed25519


def _checkpoints(engine):
    with Session(engine) as session:
        return session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq)).all()


def test_nothing_is_due_before_n_events_or_m_minutes(engine, audit_log, checkpointer):
    append_many(engine, audit_log, 9)
    assert checkpointer.run().created == 0
    assert _checkpoints(engine) == []


def test_a_checkpoint_is_due_after_n_events(engine, audit_log, checkpointer):
    append_many(engine, audit_log, 10)
    report = checkpointer.run()
    assert (report.created, report.exported) == (1, 1)
    (row,) = _checkpoints(engine)
    assert (row.chain_id, row.seq, row.prev_seq) == (TENANT, 10, 0)


def test_a_checkpoint_is_due_after_m_minutes_with_fewer_events(
    engine, audit_log, checkpointer, clock
):
    append_many(engine, audit_log, 3)
    clock.set(clock.now() + timedelta(minutes=4))
    assert checkpointer.run().created == 0
    clock.set(clock.now() + timedelta(minutes=1))
    assert checkpointer.run().created == 1
    assert checkpointer.run().created == 0  # nothing new since


def test_the_signature_covers_the_documented_message(engine, audit_log, checkpointer, keyring):
    refs = append_many(engine, audit_log, 10)
    checkpointer.run()
    (row,) = _checkpoints(engine)
    message = checkpoint_message(
        chain=TENANT,
        seq=10,
        head_hash=refs[-1].hash,
        time=row.created_at,
        prev_seq=0,
        entries_digest=entries_digest(ref.hash for ref in refs),
        key_id=key_id_for(keyring.signing_public_key()),
    )
    import base64

    assert verify_ed25519(keyring.signing_public_key(), message, base64.b64decode(row.signature))


def test_exported_files_hold_every_entry_hash_and_are_private_to_the_service(
    engine, audit_log, checkpointer, checkpoint_dir
):
    refs = append_many(engine, audit_log, 20, checkpointer=checkpointer)
    records, problems = load_checkpoint_files(checkpoint_dir, TENANT)
    assert problems == []
    assert [r.seq for r in records] == [10, 20]
    assert records[1].entry_hashes == tuple(ref.hash for ref in refs[10:])
    path = checkpoint_path(checkpoint_dir, TENANT, 20)
    assert path.stat().st_mode & 0o777 == 0o640
    assert json.loads(path.read_text())["type"] == "checkpoint"
    assert not list(path.parent.glob(".tmp-*"))


def test_an_existing_checkpoint_file_is_never_overwritten(tmp_path):
    path = tmp_path / "chain" / "000000000001.json"
    assert write_atomically(path, b"first")
    assert not write_atomically(path, b"second")
    assert path.read_bytes() == b"first"


def test_a_failed_export_is_retried_on_the_next_run(engine, audit_log, checkpointer, tmp_path):
    append_many(engine, audit_log, 10)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    broken = Checkpointer(
        engine=engine,
        signer=checkpointer._signer,
        clock=checkpointer._clock,
        settings=checkpointer._settings,
        checkpoint_dir=blocked,
    )
    with pytest.raises(NotADirectoryError):
        broken.run()
    assert _checkpoints(engine)[0].exported_at is None  # kept in the database, not lost
    assert checkpointer.run().exported == 1


def _webhook_checkpointer(engine, keyring, clock, checkpoint_dir, handler):
    settings = AuditSettings(
        checkpoint_every_events=10,
        webhook_url="https://hooks.example/audit",
        webhook_timeout_seconds=2,
    )
    return Checkpointer(
        engine=engine,
        signer=keyring,
        clock=clock,
        settings=settings,
        checkpoint_dir=checkpoint_dir,
        http_client=httpx.Client(transport=httpx.MockTransport(handler), timeout=2),
    )


def test_checkpoints_are_posted_to_the_webhook(engine, audit_log, keyring, clock, checkpoint_dir):
    received = []

    def handler(request):
        received.append(json.loads(request.content))
        return httpx.Response(204)

    checkpointer = _webhook_checkpointer(engine, keyring, clock, checkpoint_dir, handler)
    append_many(engine, audit_log, 10)
    assert checkpointer.run().delivered == 1
    assert [(r["chain"], r["seq"]) for r in received] == [(TENANT, 10)]
    assert _checkpoints(engine)[0].webhook_delivered_at is not None
    assert checkpointer.run().delivered == 0  # delivered once


def test_a_failing_webhook_is_logged_and_retried_later(
    engine, audit_log, keyring, clock, checkpoint_dir
):
    answers = [httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200)]

    def handler(_request):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    checkpointer = _webhook_checkpointer(engine, keyring, clock, checkpoint_dir, handler)
    append_many(engine, audit_log, 10)
    with capture_logs() as logs:
        first = checkpointer.run()
        second = checkpointer.run()
    assert (first.failed_deliveries, second.failed_deliveries) == (1, 1)
    failures = [e for e in logs if e["event"] == "audit.checkpoint_webhook_failed"]
    assert [f["reason"] for f in failures] == ["ConnectError", "HTTP 503"]
    assert checkpointer.run().delivered == 1
    (row,) = _checkpoints(engine)
    assert (row.webhook_attempts, row.webhook_delivered_at is not None) == (3, True)


def test_a_damaged_chain_is_never_signed(engine, audit_log, checkpointer):
    append_many(engine, audit_log, 10)
    from tests.integration.audit.test_tamper import edit_entry

    edit_entry(engine, 4, '"target":"record:4"', '"target":"x"')
    with capture_logs() as logs:
        assert checkpointer.run().created == 0
    assert any(e["event"] == "audit.chain_damaged" and e["seq"] == 4 for e in logs)
    assert _checkpoints(engine) == []


def test_two_instances_running_the_job_at_once_make_one_checkpoint(
    engine, audit_log, checkpointer, checkpoint_dir
):
    twin = Checkpointer(
        engine=engine,
        signer=checkpointer._signer,
        clock=checkpointer._clock,
        settings=checkpointer._settings,
        checkpoint_dir=checkpoint_dir,
    )
    append_many(engine, audit_log, 10)
    checkpointer.create_due()
    twin.create_due()
    checkpointer.export_pending()
    twin.export_pending()
    assert [row.seq for row in _checkpoints(engine)] == [10]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar() == 1


def test_a_chain_id_planted_in_the_database_cannot_escape_the_directory(
    engine, audit_log, checkpointer, checkpoint_dir, tmp_path
):
    append_many(engine, audit_log, 10)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_chain_heads (chain_id, last_seq, last_hash) "
                "VALUES ('../../escaped', 10, :h)"
            ),
            {"h": "ab" * 32},
        )
    with capture_logs() as logs:
        assert checkpointer.run(force=True).created == 1  # the real chain only
    assert any(e.get("kind") == "bad_chain_id" for e in logs)
    assert not (tmp_path / "escaped").exists()
    assert not (checkpoint_dir.parent.parent / "escaped").exists()
