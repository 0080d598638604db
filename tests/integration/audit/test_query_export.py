"""Query (filters, cursor pages), export, the offline verifier and the scheduled verification."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from bastion.audit import (
    AuditFilter,
    AuditQuery,
    DamageKind,
    InvalidAuditCursor,
    InvalidAuditExport,
    Keys,
    Outcome,
    export_lines,
    load_public_key_pem,
    run_scheduled_verification,
    verify_export,
)
from bastion.audit.query import MAX_PAGE_SIZE
from tests.integration.audit.conftest import TENANT, append_many, event
from tests.support.audit import TestKeyring, keys_for, tamper, verify_ed25519


@pytest.fixture
def query(audit_log):
    return AuditQuery(audit_log=audit_log)


def _search(engine, query, filters=None, **options):
    with Session(engine) as session:
        return query.search(session, TENANT, filters, **options)


def test_pages_run_newest_first_and_end_with_no_cursor(engine, audit_log, query):
    append_many(engine, audit_log, 7)
    seen, cursor = [], None
    while True:
        page = _search(engine, query, limit=3, cursor=cursor)
        seen.extend(item.seq for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_the_page_size_is_capped(engine, audit_log, query):
    append_many(engine, audit_log, 3)
    assert len(_search(engine, query, limit=10_000).items) == 3
    assert MAX_PAGE_SIZE == 200
    assert len(_search(engine, query, limit=0).items) == 1


def test_filters_combine(engine, audit_log, query, clock):
    append_many(engine, audit_log, 6)  # actors user-1, user-2, user-0, ...
    with Session(engine) as session, session.begin():
        audit_log.append(
            session,
            event(7, action="member.removed", outcome=Outcome.DENIED, target="user:9"),
        )
    by_actor = _search(engine, query, AuditFilter(actor_user_id="user-1"))
    assert [i.seq for i in by_actor.items] == [7, 4, 1]
    assert _search(engine, query, AuditFilter(action="member.")).items[0].seq == 7
    assert _search(engine, query, AuditFilter(action="member.removed")).items[0].seq == 7
    assert _search(engine, query, AuditFilter(action="record.")).items[0].seq == 6
    assert [i.seq for i in _search(engine, query, AuditFilter(outcome=Outcome.DENIED)).items] == [7]
    assert [i.seq for i in _search(engine, query, AuditFilter(target="record:2")).items] == [2]
    start = clock.now() - timedelta(milliseconds=7)  # each reading moved the clock 1 ms
    window = AuditFilter(
        since=start + timedelta(milliseconds=2), until=start + timedelta(milliseconds=4)
    )
    assert [i.seq for i in _search(engine, query, window).items] == [4, 3]


def test_records_carry_the_chain_fields(engine, audit_log, query):
    refs = append_many(engine, audit_log, 2)
    item = _search(engine, query).items[0]
    assert (item.seq, item.hash, item.prev_hash) == (2, refs[1].hash, refs[0].hash)
    assert item.details["note"] == "café ☕"


def test_a_cursor_from_another_chain_or_forged_is_refused(engine, audit_log, query):
    append_many(engine, audit_log, 3)
    append_many(engine, audit_log, 3, tenant="other-tenant")
    with Session(engine) as session:
        other = query.search(session, "other-tenant", limit=1).next_cursor
    for cursor in (other, "not-a-cursor", "djE6"):
        with pytest.raises(InvalidAuditCursor):
            _search(engine, query, cursor=cursor)


def _export(engine, tmp_path, chain=TENANT, clock=None):
    from datetime import UTC, datetime

    path = tmp_path / "export.jsonl"
    with engine.connect() as connection:
        lines = export_lines(connection, chain, now=datetime(2026, 11, 22, tzinfo=UTC))
        path.write_text("".join(line + "\n" for line in lines))
    return path


def test_an_export_verifies_offline_with_only_the_public_key(
    engine, audit_log, checkpointer, keyring, tmp_path
):
    append_many(engine, audit_log, 25, checkpointer=checkpointer)
    path = _export(engine, tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines[:2]] == ["export", "event"]
    assert sum(line["type"] == "checkpoint" for line in lines) == 2
    public_key = load_public_key_pem(keyring.public_key_pem())
    keys = Keys(dict.fromkeys(keys_for(keyring).public_keys, public_key), verify_ed25519)
    report = verify_export(path, keys)
    assert report.ok, report
    assert report.chains[0].signed_through_seq == 20


def _rewrite(path, seq, **changes):
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        document = json.loads(line)
        if document.get("type") == "event" and document["seq"] == seq:
            document.update(changes)
        out.append(json.dumps(document, ensure_ascii=False))
    path.write_text("\n".join(out) + "\n")


def test_an_edited_export_line_is_named(engine, audit_log, checkpointer, keyring, tmp_path):
    append_many(engine, audit_log, 20, checkpointer=checkpointer)
    path = _export(engine, tmp_path)
    _rewrite(path, 12, actor=None)
    (chain,) = verify_export(path, keys_for(keyring)).damaged
    assert (chain.damage.kind, chain.damage.seq) == (DamageKind.EDITED, 12)


def test_a_cut_export_is_named_truncated(engine, audit_log, checkpointer, keyring, tmp_path):
    append_many(engine, audit_log, 20, checkpointer=checkpointer)
    path = _export(engine, tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:16]) + "\n")  # header + 15 events
    (chain,) = verify_export(path, keys_for(keyring)).damaged
    assert (chain.damage.kind, chain.damage.seq) == (DamageKind.TRUNCATED, 16)


@pytest.fixture
def twenty_events(engine, audit_log, checkpointer):
    append_many(engine, audit_log, 20, checkpointer=checkpointer)


@pytest.mark.usefixtures("twenty_events")
def test_a_recomputed_chain_in_an_export_is_caught_by_checkpoint_files_beside_it(
    engine, keyring, checkpoint_dir, tmp_path
):
    from tests.integration.audit.test_tamper import edit_entry, recompute_from

    edit_entry(engine, 7, '"target":"record:7"', '"target":"x"')
    recompute_from(engine, 7)
    tamper(engine, f"DELETE FROM audit_checkpoints WHERE chain_id = '{TENANT}'")  # noqa: S608
    path = _export(engine, tmp_path)
    assert verify_export(path, keys_for(keyring)).ok  # alone, a rewritten export looks fine
    received = tmp_path / "received"
    shutil.copytree(checkpoint_dir, received)
    (chain,) = verify_export(path, keys_for(keyring), checkpoint_dir=received).damaged
    assert (chain.damage.kind, chain.damage.seq) == (DamageKind.RECOMPUTED, 7)


def test_checkpoints_signed_by_another_key_are_refused(engine, audit_log, checkpointer, tmp_path):
    append_many(engine, audit_log, 10, checkpointer=checkpointer)
    path = _export(engine, tmp_path)
    (chain,) = verify_export(path, keys_for(TestKeyring())).damaged
    assert (chain.damage.kind, chain.damage.seq) == (DamageKind.BAD_CHECKPOINT, 10)


def test_a_file_that_is_not_an_export_is_refused(tmp_path, keyring):
    path = tmp_path / "junk.jsonl"
    path.write_text('{"type": "event"}\n')
    with pytest.raises(InvalidAuditExport):
        verify_export(path, keys_for(keyring))
    with pytest.raises(InvalidAuditExport):
        load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_the_scheduled_verification_alerts_on_damage(engine, audit_log, verifier):
    append_many(engine, audit_log, 5)
    with capture_logs() as logs:
        assert run_scheduled_verification(verifier).ok
    assert [e["event"] for e in logs] == ["audit.chains_verified"]
    tamper(engine, f"DELETE FROM audit_events WHERE chain_id = '{TENANT}' AND seq = 3")  # noqa: S608
    with capture_logs() as logs:
        assert not run_scheduled_verification(verifier).ok
    (alert,) = logs
    assert (alert["event"], alert["log_level"]) == ("audit.chain_damaged", "error")
    assert (alert["chain"], alert["seq"], alert["kind"]) == (TENANT, 3, "deleted")
