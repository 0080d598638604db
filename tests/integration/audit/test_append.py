"""Appending: one call in the caller's transaction, chained, pseudonymous, all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.audit import AuditEvent, AuditLog, SecretInAuditDetails
from bastion.audit.canonical import GENESIS_HASH, SYSTEM_CHAIN
from bastion.audit.models import AuditActor, AuditEventRow
from bastion.identity.models import BootstrapToken
from bastion.kernel.clock import FrozenClock
from tests.integration.audit.conftest import TENANT, append_many, event


def _rows(engine, chain=TENANT):
    with Session(engine) as session:
        return session.scalars(
            select(AuditEventRow).where(AuditEventRow.chain_id == chain).order_by(AuditEventRow.seq)
        ).all()


def _business_row(number):
    from datetime import UTC, datetime

    now = datetime(2026, 11, 22, tzinfo=UTC)
    return BootstrapToken(
        id=f"00000000-0000-0000-0000-{number:012d}",
        token_hash=number.to_bytes(32, "big"),
        created_at=now,
        expires_at=now,
    )


def test_appends_form_a_gapless_chain_from_the_genesis_hash(engine, audit_log):
    refs = append_many(engine, audit_log, 5)
    assert [ref.seq for ref in refs] == [1, 2, 3, 4, 5]
    rows = _rows(engine)
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(row.prev_hash == before.hash for before, row in pairwise(rows))
    assert refs[-1].hash == rows[-1].hash


def test_the_stored_time_is_canonical_utc_with_microseconds(engine, audit_log):
    append_many(engine, audit_log, 1)
    assert _rows(engine)[0].occurred_at == "2026-11-22T09:00:00.000000Z"


def test_tenants_and_the_system_have_separate_chains(engine, audit_log):
    append_many(engine, audit_log, 2)
    append_many(engine, audit_log, 3, tenant=None)
    assert [r.seq for r in _rows(engine)] == [1, 2]
    assert [r.seq for r in _rows(engine, SYSTEM_CHAIN)] == [1, 2, 3]


def test_a_rolled_back_business_change_takes_its_event_with_it(engine, audit_log):
    append_many(engine, audit_log, 2)

    def failing_action():
        with Session(engine) as session, session.begin():
            session.add(_business_row(1))
            audit_log.append(session, event(3))
            raise RuntimeError("the business change fails after auditing")

    with pytest.raises(RuntimeError, match="fails after auditing"):
        failing_action()
    assert [r.seq for r in _rows(engine)] == [1, 2]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(BootstrapToken)) == 0
    # The log remembered seq 3 from the rolled-back append; the next one must still be 3.
    append_many(engine, audit_log, 1, start=3)
    rows = _rows(engine)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[2].prev_hash == rows[1].hash


def test_a_refused_event_fails_the_action(engine, audit_log):
    def action_with_a_secret():
        with Session(engine) as session, session.begin():
            session.add(_business_row(2))
            session.flush()
            audit_log.append(session, event(1, details={"password": "hunter2"}))

    with pytest.raises(SecretInAuditDetails):
        action_with_a_secret()
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(BootstrapToken)) == 0
    assert _rows(engine) == []


def test_a_rolled_back_savepoint_leaves_the_chain_whole(engine, audit_log, verifier):
    with Session(engine) as session, session.begin():
        audit_log.append(session, event(1))

        def failing_step():
            with session.begin_nested():
                audit_log.append(session, event(2))
                raise RuntimeError("inner step fails")

        with pytest.raises(RuntimeError, match="inner step"):
            failing_step()
        audit_log.append(session, event(3))
    assert [r.seq for r in _rows(engine)] == [1, 2]
    assert verifier.verify().ok


def test_two_logs_in_two_processes_share_one_chain(engine, keyring, audit_settings, verifier):
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    first = AuditLog(pseudonymizer=keyring, clock=clock, settings=audit_settings)
    second = AuditLog(pseudonymizer=keyring, clock=clock, settings=audit_settings)
    for number in range(6):
        log = first if number % 2 else second
        append_many(engine, log, 1, start=number + 1)
    assert [r.seq for r in _rows(engine)] == [1, 2, 3, 4, 5, 6]
    assert verifier.verify().ok


def test_actors_are_stored_as_pseudonyms_that_erasure_unlinks(engine, audit_log):
    append_many(engine, audit_log, 1)
    row = _rows(engine)[0]
    assert row.actor == audit_log.pseudonym_for("user-1")
    assert "user-1" not in row.actor
    with Session(engine) as session, session.begin():
        assert audit_log.resolve_actor(session, row.actor) == "user-1"
        assert audit_log.forget_actor(session, "user-1")
    with Session(engine) as session:
        assert audit_log.resolve_actor(session, row.actor) is None
        assert session.scalar(select(func.count()).select_from(AuditActor)) == 0
    assert _rows(engine)[0].hash == row.hash  # the chain is untouched


def test_pseudonyms_depend_on_the_system_key(audit_log, audit_settings, clock):
    from tests.support.audit import TestKeyring

    other = AuditLog(pseudonymizer=TestKeyring(), clock=clock, settings=audit_settings)
    assert audit_log.pseudonym_for("user-1") != other.pseudonym_for("user-1")
    assert audit_log.is_actor(audit_log.pseudonym_for("user-1"), "user-1")


def test_the_database_refuses_updates_and_deletes_of_events(engine, audit_log):
    append_many(engine, audit_log, 1)
    for statement in ("UPDATE audit_events SET prev_hash = hash", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    assert len(_rows(engine)) == 1


def test_the_database_refuses_an_event_that_does_not_extend_the_head(engine, audit_log):
    append_many(engine, audit_log, 2)
    copy = (
        "INSERT INTO audit_events (chain_id, seq, entry, prev_hash, hash) "
        "SELECT chain_id, :seq, entry, :prev, hash FROM audit_events WHERE seq = 1"
    )
    head = _rows(engine)[-1].hash

    def insert(seq, prev):
        with engine.begin() as connection:
            connection.execute(text(copy), {"seq": seq, "prev": prev})

    for seq, prev in ((3, GENESIS_HASH), (4, head), (2, head)):
        with pytest.raises(IntegrityError, match=r"audit chain head moved"):
            insert(seq, prev)
    assert len(_rows(engine)) == 2


def test_details_and_fields_round_trip_unchanged(engine, audit_log):
    with Session(engine) as session, session.begin():
        audit_log.append(
            session,
            AuditEvent(
                action="member.removed",
                tenant_id=TENANT,
                details={"z": [1, None, True], "a": {"nested": 'ünïcödé \n\t"quoted"'}},
            ),
        )
    row = _rows(engine)[0]
    assert row.details == '{"a":{"nested":"ünïcödé \\n\\t\\"quoted\\""},"z":[1,null,true]}'
    assert (row.actor, row.target, row.source_ip, row.outcome) == (None, None, None, "success")
    # The stored entry is the hashed text, and the columns are what it says.
    assert row.entry.startswith('{"action":"member.removed","actor":null,')
    assert f'"details":{row.details},' in row.entry
    assert json.loads(row.entry)["time"] == row.occurred_at


def test_an_actor_mapping_lost_to_a_rollback_is_written_again(engine, audit_log):
    def rolled_back():
        with Session(engine) as session, session.begin():
            audit_log.append(session, event(1))  # actor user-1, first sighting
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        rolled_back()
    with Session(engine) as session, session.begin():

        def failing_savepoint():
            with session.begin_nested():
                audit_log.append(session, event(2))  # actor user-2, inside a savepoint
                raise RuntimeError("savepoint")

        with pytest.raises(RuntimeError, match="savepoint"):
            failing_savepoint()
        audit_log.append(session, event(5))  # user-2 again, in the outer transaction
    append_many(engine, audit_log, 1, start=4)  # user-1 again
    with Session(engine) as session:
        for user in ("user-1", "user-2"):
            assert audit_log.resolve_actor(session, audit_log.pseudonym_for(user)) == user


def test_a_batch_appends_each_chains_events_in_order_and_skips_only_the_invalid(
    engine, audit_log, verifier
):
    append_many(engine, audit_log, 2)  # the tenant chain already has a head
    other = "0b4e3c2d-1a2b-4c5d-8e9f-0a1b2c3d4e5f"
    batch = [
        event(3),
        event(1, other),
        event(4, details={"password": "hunter2"}),  # refused: a secret in the details
        event(5),
        event(2, other),
        event(6, None),
    ]
    with Session(engine) as session, session.begin():
        outcomes = audit_log.append_batch(session, batch)

    assert isinstance(outcomes[2], SecretInAuditDetails)
    assert [(o.chain, o.seq) for i, o in enumerate(outcomes) if i != 2] == [
        (TENANT, 3),
        (other, 1),
        (TENANT, 4),
        (other, 2),
        (SYSTEM_CHAIN, 1),
    ]
    # In the order given, gapless, chained on the existing head, and the refused one nowhere.
    assert [r.request_id for r in _rows(engine)] == ["req-1", "req-2", "req-3", "req-5"]
    assert [r.request_id for r in _rows(engine, other)] == ["req-1", "req-2"]
    assert outcomes[3].hash == _rows(engine)[-1].hash
    assert verifier.verify().ok
    # A single append after the batch extends the batch's head.
    assert append_many(engine, audit_log, 1, start=7)[0].seq == 5
    assert verifier.verify().ok


def test_a_rolled_back_batch_leaves_nothing_and_the_next_starts_at_the_real_head(
    engine, audit_log, verifier
):
    append_many(engine, audit_log, 1)
    with Session(engine) as session, session.begin():
        assert [o.seq for o in audit_log.append_batch(session, [event(2), event(3)])] == [2, 3]
        session.rollback()  # the batch's transaction fails after the INSERT
    assert [r.seq for r in _rows(engine)] == [1]
    with Session(engine) as session, session.begin():
        outcomes = audit_log.append_batch(session, [event(4)])
    assert [o.seq for o in outcomes] == [2]
    assert [r.request_id for r in _rows(engine)] == ["req-1", "req-4"]
    assert verifier.verify().ok
