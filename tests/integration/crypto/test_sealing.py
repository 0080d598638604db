"""Sealing and opening against real storage: every failure is one integrity error naming the
object; moved ciphertexts fail; a shredded tenant is "erased"."""

from __future__ import annotations

import pytest

from bastion.crypto import (
    IntegrityCheckError,
    KeyNotProvisionedError,
    TenantErasedError,
    verify_signature,
)
from bastion.errors import Gone, InvalidInput
from tests.integration.crypto.conftest import OTHER_TENANT, TENANT

PURPOSE = "records:customers"
RECORD = "rec-0001"
PLAINTEXT = b'{"name": "Ada Lovelace", "email": "ada@example.com"}'


def _seal(keyring, tenant=TENANT, purpose=PURPOSE, record_id=RECORD, plaintext=PLAINTEXT):
    return keyring.seal(tenant, purpose=purpose, record_id=record_id, plaintext=plaintext)


def _open(keyring, sealed, tenant=TENANT, purpose=PURPOSE, record_id=RECORD):
    return keyring.open(tenant, purpose=purpose, record_id=record_id, sealed=sealed)


def test_a_sealed_value_opens_to_its_plaintext(keyring):
    sealed = _seal(keyring)
    assert PLAINTEXT not in sealed
    assert _open(keyring, sealed) == PLAINTEXT


def test_two_seals_of_the_same_value_differ(keyring):
    assert _seal(keyring) != _seal(keyring)


def test_the_format_carries_version_kind_and_key_version(keyring):
    sealed = _seal(keyring)
    assert sealed[:6] == bytes([1, 1, 0, 0, 0, 1])
    assert len(sealed) == 6 + 12 + len(PLAINTEXT) + 16


@pytest.mark.parametrize(
    ("where", "offset"),
    [
        ("format byte", 0),
        ("key kind", 1),
        ("key version", 5),
        ("nonce", 10),
        ("body", 20),
        ("tag", -1),
    ],
)
def test_tampered_bytes_raise_the_integrity_error_naming_the_object(keyring, where, offset):
    sealed = bytearray(_seal(keyring))
    sealed[offset] ^= 0x01
    with pytest.raises(IntegrityCheckError) as raised:
        _open(keyring, bytes(sealed))
    message = str(raised.value)
    assert TENANT in message
    assert PURPOSE in message
    assert RECORD in message
    assert "Ada" not in message


def test_a_truncated_value_raises_the_integrity_error(keyring):
    sealed = _seal(keyring)
    for length in (0, 5, 17, 33, len(sealed) - 1):
        with pytest.raises(IntegrityCheckError, match=RECORD):
            _open(keyring, sealed[:length])


def test_wrong_associated_data_raises_the_integrity_error(keyring):
    sealed = _seal(keyring)
    with pytest.raises(IntegrityCheckError, match="tampered, or moved"):
        _open(keyring, sealed, purpose="records:invoices")
    with pytest.raises(IntegrityCheckError, match="rec-0002"):
        _open(keyring, sealed, record_id="rec-0002")


def test_a_ciphertext_moved_to_another_row_fails(keyring):
    first = _seal(keyring, record_id="rec-0001", plaintext=b"first")
    _seal(keyring, record_id="rec-0002", plaintext=b"second")
    # An attacker with write access to the table copies row 1's ciphertext into row 2.
    with pytest.raises(IntegrityCheckError, match="rec-0002"):
        _open(keyring, first, record_id="rec-0002")


def test_a_ciphertext_moved_to_another_tenant_fails(keyring):
    sealed = _seal(keyring, tenant=TENANT)
    with pytest.raises(IntegrityCheckError, match=OTHER_TENANT):
        _open(keyring, sealed, tenant=OTHER_TENANT)


def test_an_unknown_key_version_raises_the_integrity_error_naming_it(keyring):
    sealed = bytearray(_seal(keyring))
    sealed[2:6] = (99).to_bytes(4, "big")
    with pytest.raises(IntegrityCheckError, match="unknown key version 99") as raised:
        _open(keyring, bytes(sealed))
    assert RECORD in str(raised.value)


def test_a_system_value_cannot_be_opened_as_a_tenant_value(keyring):
    sealed = keyring.seal_system(purpose=PURPOSE, record_id=RECORD, plaintext=PLAINTEXT)
    assert keyring.open_system(purpose=PURPOSE, record_id=RECORD, sealed=sealed) == PLAINTEXT
    with pytest.raises(IntegrityCheckError, match="key kind 2"):
        _open(keyring, sealed, tenant="system")
    with pytest.raises(IntegrityCheckError):
        keyring.open_system(purpose=PURPOSE, record_id=RECORD, sealed=_seal(keyring))


def test_values_that_are_not_bytes_raise_the_integrity_error(keyring):
    for value in (None, "text", 42, memoryview(b"short")):
        with pytest.raises(IntegrityCheckError, match=RECORD):
            _open(keyring, value)


def test_a_memoryview_of_a_good_value_opens(keyring):
    assert _open(keyring, memoryview(_seal(keyring))) == PLAINTEXT


def test_over_long_names_are_refused_when_sealing(keyring):
    with pytest.raises(InvalidInput):
        _seal(keyring, record_id="r" * 2000)
    with pytest.raises(InvalidInput):
        _seal(keyring, purpose="p" * 2000)


def test_a_tenant_without_keys_is_told_so(keyring):
    with pytest.raises(KeyNotProvisionedError):
        _seal(keyring, tenant="never-provisioned")


def test_a_shredded_tenant_raises_erased_not_an_integrity_error(keyring):
    sealed = _seal(keyring)
    receipt = keyring.shred_tenant(TENANT)
    assert receipt.versions_destroyed == 1
    with pytest.raises(TenantErasedError, match="erased") as raised:
        _open(keyring, sealed)
    assert isinstance(raised.value, Gone)
    with pytest.raises(TenantErasedError):
        _seal(keyring)
    with pytest.raises(TenantErasedError):
        keyring.blind_index(TENANT, field="email", value="ada@example.com")
    with pytest.raises(TenantErasedError):
        keyring.provision_tenant(TENANT)
    # The other tenant is untouched.
    assert _open(keyring, _seal(keyring, tenant=OTHER_TENANT), tenant=OTHER_TENANT) == PLAINTEXT


def test_shredding_is_seen_by_a_fresh_process(keyring, make_keyring):
    sealed = _seal(keyring)
    keyring.shred_tenant(TENANT)
    with pytest.raises(TenantErasedError):
        _open(make_keyring(), sealed)


def test_shredding_twice_returns_the_first_receipt_and_one_ledger_row(keyring):
    first = keyring.shred_tenant(TENANT)
    second = keyring.shred_tenant(TENANT)
    assert first == second
    assert [entry.tenant for entry in keyring.erasures()] == [TENANT]


def test_the_erasure_ledger_replays_onto_another_database(keyring, make_keyring, tmp_path):
    # A "restored backup": a second database that still holds the tenant's keys.
    from bastion.crypto import Keyring, LocalKeyProvider, create_key_file
    from bastion.db import UnitOfWork, make_engine, upgrade_to_head

    restored_engine = make_engine(f"sqlite:///{tmp_path / 'restored.db'}", create=True)
    upgrade_to_head(restored_engine)
    create_key_file(tmp_path / "restored.key")
    restored = Keyring(
        uow=UnitOfWork(restored_engine),
        provider=LocalKeyProvider(key_file=tmp_path / "restored.key"),
        clock=keyring.clock,
    )
    restored.initialise()
    restored.provision_tenant(TENANT)
    old_sealed = restored.seal(TENANT, purpose=PURPOSE, record_id=RECORD, plaintext=PLAINTEXT)

    keyring.shred_tenant(TENANT)
    assert restored.replay_erasures(keyring.erasures()) == 1
    assert restored.replay_erasures(keyring.erasures()) == 0
    with pytest.raises(TenantErasedError):
        restored.open(TENANT, purpose=PURPOSE, record_id=RECORD, sealed=old_sealed)
    restored_engine.dispose()


def test_blind_indexes_are_deterministic_per_tenant_and_field(keyring):
    index = keyring.blind_index(TENANT, field="email", value="ada@example.com")
    assert len(index) == 32
    assert index == keyring.blind_index(TENANT, field="email", value=b"ada@example.com")
    assert index != keyring.blind_index(TENANT, field="email", value="bob@example.com")
    assert index != keyring.blind_index(TENANT, field="login", value="ada@example.com")
    assert index != keyring.blind_index(OTHER_TENANT, field="email", value="ada@example.com")


def test_blind_indexes_survive_data_key_rotation_and_a_new_process(keyring, make_keyring):
    before = keyring.blind_index(TENANT, field="email", value="ada@example.com")
    keyring.rotate(TENANT)
    assert keyring.blind_index(TENANT, field="email", value="ada@example.com") == before
    assert make_keyring().blind_index(TENANT, field="email", value="ada@example.com") == before


def test_signatures_verify_with_the_exported_public_key(keyring, make_keyring):
    message = b"checkpoint: chain system, seq 10, head abc"
    signature = keyring.sign(message)
    public = keyring.signing_public_key()
    assert len(public) == 32
    assert verify_signature(public, message=message, signature=signature)
    assert not verify_signature(public, message=message + b"!", signature=signature)
    assert not verify_signature(public, message=message, signature=b"\x00" * 64)
    assert not verify_signature(b"short", message=message, signature=signature)
    assert keyring.signing_public_key_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    # Another process of the same installation signs with the same key.
    assert make_keyring().signing_public_key() == public


def test_system_mac_is_stable_keyed_and_separated_by_purpose(keyring, make_keyring):
    mac = keyring.system_mac("audit.actor", b"user-1")
    assert len(mac) == 32
    assert mac == make_keyring().system_mac("audit.actor", b"user-1")
    assert mac != keyring.system_mac("audit.actor", b"user-2")
    assert mac != keyring.system_mac("identity.email_index", b"user-1")
    keyring.rotate_system_key()
    assert make_keyring().system_mac("audit.actor", b"user-1") == mac


def test_system_values_survive_system_key_rotation(keyring, make_keyring):
    sealed = keyring.seal_system(purpose="totp", record_id="user-1", plaintext=b"secret")
    keyring.rotate_system_key()
    newer = keyring.seal_system(purpose="totp", record_id="user-1", plaintext=b"secret")
    assert newer[2:6] == (2).to_bytes(4, "big")
    fresh = make_keyring()
    assert fresh.open_system(purpose="totp", record_id="user-1", sealed=sealed) == b"secret"
    assert fresh.open_system(purpose="totp", record_id="user-1", sealed=newer) == b"secret"


def test_wrapped_keys_are_bound_to_their_row(keyring, engine):
    # Swap the wrapped data keys of two tenants in the table: neither unwraps any more.
    from sqlalchemy import select, update

    from bastion.crypto.models import TenantKey

    sealed = _seal(keyring)
    with engine.begin() as connection:
        rows = dict(connection.execute(select(TenantKey.tenant_id, TenantKey.wrapped_key)).all())
        for tenant, other in ((TENANT, OTHER_TENANT), (OTHER_TENANT, TENANT)):
            connection.execute(
                update(TenantKey)
                .where(TenantKey.tenant_id == tenant)
                .values(wrapped_key=rows[other])
            )
    from bastion.crypto import Keyring
    from bastion.db import UnitOfWork

    fresh = Keyring(uow=UnitOfWork(engine), provider=keyring.provider, clock=keyring.clock)
    with pytest.raises(IntegrityCheckError, match="does not unwrap"):
        _open(fresh, sealed)
