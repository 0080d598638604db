"""The keyring over the PKCS#11 provider (a real SoftHSM2 token), on SQLite and PostgreSQL, and a
master-key migration from the local key file into the HSM through KEK rotation."""

from __future__ import annotations

import pytest

from bastion.crypto import Keyring, MasterKeyMismatchError
from bastion.db import UnitOfWork
from tests.integration.crypto.conftest import TENANT
from tests.integration.crypto_pkcs11.conftest import provider, softhsm  # noqa: F401 - fixtures

PURPOSE = "records:notes"


def test_the_keyring_works_over_an_hsm_master_key(engine, clock, provider):  # noqa: F811
    keyring = Keyring(uow=UnitOfWork(engine), provider=provider, clock=clock)
    keyring.initialise()
    keyring.verify_master_key()
    keyring.provision_tenant(TENANT)
    sealed = keyring.seal(TENANT, purpose=PURPOSE, record_id="r", plaintext=b"in the token")
    keyring.rotate(TENANT)
    fresh = Keyring(uow=UnitOfWork(engine), provider=provider, clock=clock)
    assert fresh.open(TENANT, purpose=PURPOSE, record_id="r", sealed=sealed) == b"in the token"
    assert len(fresh.sign(b"m")) == 64


def test_kek_rotation_moves_the_keyring_from_the_key_file_into_the_hsm(
    keyring,
    make_keyring,
    provider,  # noqa: F811
):
    sealed = keyring.seal(TENANT, purpose=PURPOSE, record_id="r", plaintext=b"moved")
    public = keyring.signing_public_key()
    report = keyring.rotate_kek(provider)
    assert report.new_key_id == provider.key_id
    assert report.rewrapped == report.total

    in_hsm = Keyring(uow=keyring.uow, provider=provider, clock=keyring.clock)
    in_hsm.verify_master_key()
    assert in_hsm.open(TENANT, purpose=PURPOSE, record_id="r", sealed=sealed) == b"moved"
    assert in_hsm.signing_public_key() == public
    with pytest.raises(MasterKeyMismatchError):
        make_keyring().verify_master_key()  # the old key file no longer matches
