"""Rotation round trips on SQLite and PostgreSQL: data keys, re-encryption, retirement, the
encryption counter, and master-key (KEK) rotation, including resuming an interrupted one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, insert, select

from bastion.crypto import (
    IntegrityCheckError,
    KeyRetirementRefusedError,
    LocalKeyProvider,
    MasterKeyMismatchError,
    TableReencryptionTarget,
    create_key_file,
)
from bastion.crypto import admin as admin_module
from tests.integration.crypto.conftest import OTHER_TENANT, TENANT

PURPOSE = "records:notes"
ROWS = 25


@pytest.fixture
def notes(engine):
    metadata = MetaData()
    table = Table(
        "test_sealed_notes",
        metadata,
        Column("tenant_id", String(36), primary_key=True),
        Column("id", String(36), primary_key=True),
        Column("sealed", LargeBinary, nullable=False),
    )
    metadata.create_all(engine)
    return table


def _fill(engine, keyring, table, tenant=TENANT, rows=ROWS):
    values = []
    for i in range(rows):
        record_id = f"note-{i:04d}"
        plaintext = f"note {i} of {tenant}".encode()
        sealed = keyring.seal(tenant, purpose=PURPOSE, record_id=record_id, plaintext=plaintext)
        values.append({"tenant_id": tenant, "id": record_id, "sealed": sealed})
    with engine.begin() as connection:
        connection.execute(insert(table), values)


def _read_all(engine, keyring, table, tenant=TENANT):
    with engine.connect() as connection:
        rows = connection.execute(
            select(table.c.id, table.c.sealed).where(table.c.tenant_id == tenant)
        ).all()
    opened = {}
    for record_id, sealed in rows:
        opened[record_id] = keyring.open(
            tenant, purpose=PURPOSE, record_id=record_id, sealed=bytes(sealed)
        )
    return opened


def _versions(engine, table, tenant=TENANT):
    with engine.connect() as connection:
        rows = connection.execute(
            select(table.c.sealed).where(table.c.tenant_id == tenant)
        ).scalars()
        return sorted({int.from_bytes(bytes(sealed)[2:6], "big") for sealed in rows})


def test_rotation_round_trip_reencrypt_and_retire(engine, keyring, make_keyring, notes, clock):
    target = TableReencryptionTarget(engine=engine, table=notes, purpose=PURPOSE)
    keyring.register_target(target)
    _fill(engine, keyring, notes)
    _fill(engine, keyring, notes, tenant=OTHER_TENANT)
    expected = _read_all(engine, keyring, notes)

    old_value = keyring.seal(TENANT, purpose=PURPOSE, record_id="loose", plaintext=b"v1")
    assert keyring.rotate(TENANT).version == 2
    new_value = keyring.seal(TENANT, purpose=PURPOSE, record_id="loose", plaintext=b"v2")
    assert new_value[2:6] == (2).to_bytes(4, "big")
    assert keyring.open(TENANT, purpose=PURPOSE, record_id="loose", sealed=old_value) == b"v1"

    # Retirement is refused while the version is needed, each time saying why.
    with pytest.raises(KeyRetirementRefusedError, match="active"):
        keyring.retire(TENANT, 2)
    clock.set(clock.now() + timedelta(minutes=5))
    with pytest.raises(KeyRetirementRefusedError, match=f"{ROWS} values"):
        keyring.retire(TENANT, 1)

    (report,) = keyring.reencrypt(TENANT)
    assert report.finished
    assert report.rows_reencrypted == ROWS
    assert _versions(engine, notes) == [2]
    assert _versions(engine, notes, tenant=OTHER_TENANT) == [1]  # other tenants untouched
    assert _read_all(engine, make_keyring(), notes) == expected

    # A second pass is a no-op.
    (again,) = keyring.reencrypt(TENANT)
    assert again.rows_reencrypted == 0

    retired = keyring.retire(TENANT, 1)
    assert retired.status == "retired"
    assert keyring.retire(TENANT, 1).status == "retired"  # idempotent
    assert _read_all(engine, make_keyring(), notes) == expected
    # A value nobody re-encrypted (not in a registered target) is gone with its version.
    with pytest.raises(IntegrityCheckError, match="key version 1 was retired"):
        make_keyring().open(TENANT, purpose=PURPOSE, record_id="loose", sealed=old_value)
    assert [v.status for v in keyring.key_versions(TENANT)] == ["retired", "active"]


def test_retirement_waits_for_other_processes_caches(keyring, clock):
    keyring.rotate(TENANT)
    with pytest.raises(KeyRetirementRefusedError, match="retry after"):
        keyring.retire(TENANT, 1)
    clock.set(clock.now() + timedelta(seconds=2 * keyring.cache_ttl_seconds))
    assert keyring.retire(TENANT, 1).status == "retired"


def test_an_unfinished_reencryption_blocks_retirement(engine, keyring, notes, clock):
    target = TableReencryptionTarget(engine=engine, table=notes, purpose=PURPOSE)
    keyring.register_target(target)
    _fill(engine, keyring, notes)
    keyring.rotate(TENANT)
    clock.set(clock.now() + timedelta(minutes=5))

    class Stop(Exception):
        pass

    def stop_after_first_batch(report):
        raise Stop

    small = type(keyring)(
        uow=keyring.uow, provider=keyring.provider, clock=clock, reencrypt_batch_rows=10
    )
    small.register_target(target)
    with pytest.raises(Stop):
        small.reencrypt(TENANT, progress=stop_after_first_batch)
    assert _versions(engine, notes) == [1, 2]
    with pytest.raises(KeyRetirementRefusedError):
        keyring.retire(TENANT, 1)
    (report,) = small.reencrypt(TENANT)
    assert report.finished
    assert report.rows_done_total == ROWS
    assert _versions(engine, notes) == [2]
    keyring.retire(TENANT, 1)


def test_the_counter_rotates_a_key_before_its_limit(make_keyring, engine):
    keyring = make_keyring(max_encryptions_per_key=10, reservation_block=4)
    keyring.initialise()
    keyring.provision_tenant(TENANT)
    sealed = [
        keyring.seal(TENANT, purpose=PURPOSE, record_id=str(i), plaintext=b"x") for i in range(25)
    ]
    versions = keyring.key_versions(TENANT)
    # Reserved counts never exceed the limit on any version that encrypted, and each version
    # encrypted at most `limit` times (reservations of 4: 8 usable of 10, then rotate).
    per_version: dict[int, int] = {}
    for value in sealed:
        version = int.from_bytes(value[2:6], "big")
        per_version[version] = per_version.get(version, 0) + 1
    assert len(versions) >= 3
    assert all(count <= 10 for count in per_version.values())
    for info in versions:
        assert per_version.get(info.version, 0) <= info.encryptions_reserved
    for i, value in enumerate(sealed):
        assert keyring.open(TENANT, purpose=PURPOSE, record_id=str(i), sealed=value) == b"x"


def test_the_persisted_counter_is_never_below_the_encryptions_made(make_keyring):
    first = make_keyring(reservation_block=8)
    first.initialise()
    first.provision_tenant(TENANT)
    for i in range(20):
        first.seal(TENANT, purpose=PURPOSE, record_id=str(i), plaintext=b"x")
    # A second process (or a restart) reserves its own block: counts only ever go up.
    second = make_keyring(reservation_block=8)
    second.seal(TENANT, purpose=PURPOSE, record_id="x", plaintext=b"x")
    (info,) = second.key_versions(TENANT)
    assert info.encryptions_reserved >= 21
    assert info.encryptions_reserved <= 21 + 2 * 8


def test_kek_rotation_round_trip(keyring, make_keyring, tmp_path):
    sealed = keyring.seal(TENANT, purpose=PURPOSE, record_id="r", plaintext=b"secret")
    system = keyring.seal_system(purpose="totp", record_id="u", plaintext=b"totp")
    public = keyring.signing_public_key()
    mac = keyring.system_mac("audit.actor", b"u")
    index = keyring.blind_index(TENANT, field="email", value="a@b")

    new_file = tmp_path / "new.key"
    create_key_file(new_file)
    seen = []
    report = keyring.rotate_kek(
        LocalKeyProvider(key_file=new_file), progress=lambda d, t: seen.append((d, t))
    )
    # 3 system keys + 2 tenants (one row each).
    assert report.rewrapped == report.total == 5
    assert seen[-1] == (5, 5)
    assert report.old_key_id != report.new_key_id

    after = make_keyring(key_file=new_file)
    after.verify_master_key()
    assert after.open(TENANT, purpose=PURPOSE, record_id="r", sealed=sealed) == b"secret"
    assert after.open_system(purpose="totp", record_id="u", sealed=system) == b"totp"
    assert after.signing_public_key() == public
    assert after.system_mac("audit.actor", b"u") == mac
    assert after.blind_index(TENANT, field="email", value="a@b") == index
    with pytest.raises(MasterKeyMismatchError, match="does not match the keyring"):
        make_keyring().verify_master_key()
    # Idempotent: running it again rewraps nothing.
    assert keyring.rotate_kek(LocalKeyProvider(key_file=new_file)).rewrapped == 0


def test_an_interrupted_kek_rotation_resumes(keyring, make_keyring, tmp_path, monkeypatch):
    tenants = [f"tenant-{i:03d}" for i in range(12)]
    sealed = {}
    for tenant in tenants:
        keyring.provision_tenant(tenant)
        sealed[tenant] = keyring.seal(tenant, purpose=PURPOSE, record_id="r", plaintext=b"t")
    monkeypatch.setattr(admin_module, "KEK_BATCH_ROWS", 4)
    new_file = tmp_path / "new.key"
    create_key_file(new_file)

    class Crash(Exception):
        pass

    committed = []

    def crash_after_three_batches(done, total):
        committed.append(done)
        if len(committed) == 4:  # the first call reports the starting point
            raise Crash

    with pytest.raises(Crash):
        make_keyring().rotate_kek(
            LocalKeyProvider(key_file=new_file), progress=crash_after_three_batches
        )
    total = 3 + 2 + len(tenants)  # system keys, the fixture's tenants, these tenants
    assert 0 < committed[-1] < total
    # Half-rotated: start-up says exactly that, with either key.
    with pytest.raises(MasterKeyMismatchError, match="did not finish"):
        make_keyring().verify_master_key()
    with pytest.raises(MasterKeyMismatchError, match="did not finish"):
        make_keyring(key_file=new_file).verify_master_key()

    report = make_keyring().rotate_kek(LocalKeyProvider(key_file=new_file))
    assert report.rewrapped == report.total == total - committed[-1]
    after = make_keyring(key_file=new_file)
    after.verify_master_key()
    for tenant in tenants:
        assert after.open(tenant, purpose=PURPOSE, record_id="r", sealed=sealed[tenant]) == b"t"


def test_kek_rotation_refuses_rows_wrapped_by_an_unknown_key(keyring, make_keyring, tmp_path):
    stranger_file = tmp_path / "stranger.key"
    create_key_file(stranger_file)
    stranger = make_keyring(key_file=stranger_file)
    new_file = tmp_path / "new.key"
    create_key_file(new_file)
    with pytest.raises(MasterKeyMismatchError):
        stranger.rotate_kek(LocalKeyProvider(key_file=new_file))
    # Nothing changed: the right key still opens everything.
    make_keyring().verify_master_key()
