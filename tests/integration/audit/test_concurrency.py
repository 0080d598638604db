"""Concurrent appends on PostgreSQL: 8 writers x 1,000 events, into one chain and into 8 chains.

Each writer has its own engine (so its own connection) and commits every event, the shape of
real request traffic. Every chain must verify, with no gap and no duplicate sequence number.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import AuditLog, AuditVerifier
from bastion.audit.models import AuditEventRow
from bastion.db import make_engine, upgrade_to_head
from bastion.kernel.clock import SystemClock
from bastion.settings import AuditSettings
from tests.integration.audit.conftest import event
from tests.support.audit import TestKeyring, keys_for

WRITERS = 8
EVENTS_EACH = 1_000

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]


def _run_writers(url, keyring, chain_of):
    errors = []
    start = threading.Barrier(WRITERS)

    def write(writer):
        engine = make_engine(url)
        # One AuditLog per writer: as if each were its own process.
        log = AuditLog(pseudonymizer=keyring, clock=SystemClock(), settings=AuditSettings())
        try:
            start.wait()
            for number in range(EVENTS_EACH):
                with Session(engine) as session, session.begin():
                    log.append(session, event(number, tenant=chain_of(writer)))
        except Exception as exc:  # collected, and failed on below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def _check(url, keyring, chains):
    engine = make_engine(url)
    try:
        report = AuditVerifier(engine=engine, keys=keys_for(keyring), checkpoint_dir=None).verify()
        assert report.ok, report
        total = WRITERS * EVENTS_EACH // len(chains)
        with Session(engine) as session:
            for chain in chains:
                seqs = session.scalars(
                    select(AuditEventRow.seq)
                    .where(AuditEventRow.chain_id == chain)
                    .order_by(AuditEventRow.seq)
                ).all()
                assert seqs == list(range(1, total + 1))
            assert session.scalar(select(func.count()).select_from(AuditEventRow)) == (
                WRITERS * EVENTS_EACH
            )
        assert sorted(c.chain for c in report.chains) == sorted(chains)
    finally:
        engine.dispose()


@pytest.fixture
def fresh_postgres(postgres_databases):
    url = postgres_databases.create()
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    return url


def test_eight_writers_into_one_chain(fresh_postgres):
    keyring = TestKeyring()
    _run_writers(fresh_postgres, keyring, lambda _writer: "tenant-shared")
    _check(fresh_postgres, keyring, ["tenant-shared"])


def test_eight_writers_into_eight_chains(fresh_postgres):
    keyring = TestKeyring()
    _run_writers(fresh_postgres, keyring, lambda writer: f"tenant-{writer}")
    _check(fresh_postgres, keyring, [f"tenant-{w}" for w in range(WRITERS)])
