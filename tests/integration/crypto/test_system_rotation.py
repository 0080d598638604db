"""System data-key lifecycle: rotate, re-encrypt every registered system-sealed column, retire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bastion.crypto import KeyRetirementRefusedError
from bastion.crypto.errors import IntegrityCheckError
from bastion.crypto.models import SYSTEM_JOB_OWNER, ReencryptionJob
from bastion.errors import InvalidInput
from bastion.mail.models import QueuedMail
from bastion.mail.outbox import OutgoingMail
from bastion.mail.queue import SEAL_PURPOSE, open_mail, seal_mail
from tests.integration.crypto.system_rows import (
    insert_rows,
    open_all,
    register_columns,
    sealed_values,
    version_of,
)

USERS = 7
MAILS = 5


@pytest.fixture
def system_keyring(keyring, engine):
    register_columns(keyring, engine)
    return keyring


def _settle(clock):
    clock.set(clock.now() + timedelta(minutes=5))


def test_rotation_round_trip_reencrypts_every_column_then_retires(
    system_keyring, engine, make_keyring, clock
):
    keyring = system_keyring
    insert_rows(keyring, engine, users=USERS, mails=MAILS)
    before = open_all(keyring, engine)
    # users, TOTP, pending e-mails (the NULL payload skipped), invitations, outbox
    assert len(before) == 4 * USERS + MAILS
    assert {version_of(sealed) for sealed in sealed_values(engine).values()} == {1}

    assert keyring.rotate_system_key().version == 2
    _settle(clock)
    with pytest.raises(KeyRetirementRefusedError, match=r"still use system data-key version 1"):
        keyring.retire_system_key(1)

    reports = keyring.reencrypt_system()
    assert {report.target for report in reports} == {
        column.name for column in keyring.system_columns
    }
    assert all(report.finished and report.to_version == 2 for report in reports)
    assert sum(report.rows_reencrypted for report in reports) == len(before)
    assert {version_of(sealed) for sealed in sealed_values(engine).values()} == {2}

    retired = keyring.retire_system_key(1)
    assert retired.status == "retired"
    assert keyring.retire_system_key(1).status == "retired"  # idempotent
    statuses = [(v.version, v.status) for v in keyring.system_key_versions()]
    assert statuses == [(1, "retired"), (2, "active")]

    fresh = make_keyring()  # nothing cached: every value opens with version 2 alone
    assert open_all(fresh, engine) == before


def test_a_value_sealed_with_a_retired_version_no_longer_opens(
    system_keyring, engine, make_keyring, clock
):
    keyring = system_keyring
    mail = OutgoingMail(to_address="a@example.com", subject="s", body="b")
    old = seal_mail(keyring, "m-stale", mail)
    keyring.rotate_system_key()
    _settle(clock)
    keyring.reencrypt_system()
    keyring.retire_system_key(1)
    with pytest.raises(IntegrityCheckError, match="retired"):
        open_mail(make_keyring(), "m-stale", old)


def test_retirement_is_refused_while_active_recent_or_unfinished(system_keyring, engine, clock):
    keyring = system_keyring
    insert_rows(keyring, engine, users=2, mails=2)
    with pytest.raises(KeyRetirementRefusedError, match="active system data key"):
        keyring.retire_system_key(1)
    keyring.rotate_system_key()
    with pytest.raises(KeyRetirementRefusedError, match="other processes may still use it"):
        keyring.retire_system_key(1)
    _settle(clock)
    keyring.reencrypt_system()
    with engine.begin() as connection:  # as if a pass had been killed mid-way
        connection.execute(
            update(ReencryptionJob)
            .where(ReencryptionJob.tenant_id == SYSTEM_JOB_OWNER)
            .values(finished=False)
        )
    with pytest.raises(KeyRetirementRefusedError, match="has not finished"):
        keyring.retire_system_key(1)
    with pytest.raises(KeyRetirementRefusedError, match="no version 9"):
        keyring.retire_system_key(9)


def test_a_late_write_with_the_old_version_blocks_retirement_until_reencrypted_again(
    system_keyring, engine, make_keyring, clock
):
    keyring = system_keyring
    insert_rows(keyring, engine, users=1, mails=1)
    stale = make_keyring()  # another process that sealed with version 1 just before rotating
    mail = OutgoingMail(to_address="late@example.com", subject="late", body="late")
    late = seal_mail(stale, "m-late", mail)
    keyring.rotate_system_key()
    _settle(clock)
    keyring.reencrypt_system()
    with engine.begin() as connection:
        connection.execute(
            QueuedMail.__table__.insert().values(
                id="m-late", sealed=late, created_at=clock.now(), next_attempt_at=clock.now()
            )
        )
    with pytest.raises(KeyRetirementRefusedError, match=r"1 values in system:mail_outbox\.sealed"):
        keyring.retire_system_key(1)
    # Running the finished pass again rescans (it does not answer "already done").
    reports = keyring.reencrypt_system()
    assert sum(report.rows_reencrypted for report in reports) == 1
    keyring.retire_system_key(1)
    with engine.connect() as connection:
        sealed = connection.scalar(select(QueuedMail.sealed).where(QueuedMail.id == "m-late"))
    assert open_mail(make_keyring(), "m-late", sealed) == mail


def test_a_tampered_value_stops_the_pass_naming_it(system_keyring, engine):
    keyring = system_keyring
    insert_rows(keyring, engine, users=0, mails=3)
    with engine.begin() as connection:
        sealed = connection.scalar(select(QueuedMail.sealed).where(QueuedMail.id == "m-00001"))
        connection.execute(
            update(QueuedMail)
            .where(QueuedMail.id == "m-00001")
            .values(sealed=sealed[:-1] + bytes([sealed[-1] ^ 1]))
        )
    keyring.rotate_system_key()
    with pytest.raises(IntegrityCheckError, match=rf"{SEAL_PURPOSE!r} 'm-00001'"):
        keyring.reencrypt_system()
    # Nothing was lost: the untampered rows still open, under either version.
    with engine.connect() as connection:
        rows = connection.execute(select(QueuedMail.id, QueuedMail.sealed)).all()
    for row_id, value in rows:
        if row_id != "m-00001":
            open_mail(keyring, row_id, bytes(value))


def test_retirement_without_registered_columns_is_refused(keyring, clock):
    keyring.rotate_system_key()
    _settle(clock)
    with pytest.raises(KeyRetirementRefusedError, match="no system-sealed column is registered"):
        keyring.retire_system_key(1)


def test_the_system_job_owner_is_not_a_tenant_id(keyring):
    with pytest.raises(InvalidInput, match="reserved"):
        keyring.provision_tenant(SYSTEM_JOB_OWNER)
    with pytest.raises(InvalidInput, match="reserved"):
        keyring.shred_tenant(SYSTEM_JOB_OWNER)


def test_status_shows_system_passes_and_pending_versions(system_keyring, engine, clock):
    keyring = system_keyring
    insert_rows(keyring, engine, users=1, mails=1)
    keyring.rotate_system_key()
    assert keyring.status().pending_system_versions == (1,)
    keyring.reencrypt_system()
    status = keyring.status()
    assert {job.target for job in status.system_reencryption} == {
        column.name for column in keyring.system_columns
    }
    assert all(job.finished and job.to_version == 2 for job in status.system_reencryption)
    _settle(clock)
    keyring.retire_system_key(1)
    assert keyring.status().pending_system_versions == ()
