"""The keyring over a master key in SoftHSM2, on SQLite and PostgreSQL, and a real server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bastion.crypto import Keyring, LocalKeyProvider, MasterKeyMismatchError, create_key_file
from bastion.crypto.kms.base import KeyProvider
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.kernel.clock import FrozenClock
from tests.support.server import ServerProcess, run_cli

from .conftest import KEY_LABEL, USER_PIN, SoftHsmToken

TENANT = "5d0c3f1e-8a7b-4c2d-9e6f-1a2b3c4d5e6f"
PURPOSE = "records.field"


@pytest.fixture
def make_keyring(database_url: str) -> Any:
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    clock = FrozenClock(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))

    def factory(provider: KeyProvider) -> Keyring:
        return Keyring(uow=UnitOfWork(engine), provider=provider, clock=clock)

    yield factory
    engine.dispose()


def test_keyring_seals_and_opens_under_an_hsm_master_key(
    make_keyring: Any, softhsm: SoftHsmToken
) -> None:
    assert softhsm.create_key()
    keyring = make_keyring(softhsm.provider())
    keyring.initialise()
    keyring.provision_tenant(TENANT)
    sealed = keyring.seal(TENANT, purpose=PURPOSE, record_id="r1", plaintext=b"secret")

    # A new process (fresh keyring and provider, empty caches) opens it through the token.
    again = make_keyring(softhsm.provider())
    again.verify_master_key()
    assert again.open(TENANT, purpose=PURPOSE, record_id="r1", sealed=sealed) == b"secret"


def test_another_hsm_key_is_refused_at_start_up(make_keyring: Any, softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()
    assert softhsm.create_key("impostor")
    make_keyring(softhsm.provider()).initialise()

    with pytest.raises(MasterKeyMismatchError, match="does not match the keyring"):
        make_keyring(softhsm.provider(key_label="impostor")).verify_master_key()


def test_kek_rotation_moves_a_keyring_from_a_key_file_into_the_hsm_and_on(
    make_keyring: Any, softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    key_file = tmp_path / "master.key"
    create_key_file(key_file)
    keyring = make_keyring(LocalKeyProvider(key_file=key_file))
    keyring.initialise()
    keyring.provision_tenant(TENANT)
    sealed = keyring.seal(TENANT, purpose=PURPOSE, record_id="r1", plaintext=b"secret")
    assert softhsm.create_key()
    assert softhsm.create_key("kek-2027")

    into_hsm = keyring.rotate_kek(softhsm.provider())
    onwards = make_keyring(softhsm.provider()).rotate_kek(softhsm.provider(key_label="kek-2027"))

    assert into_hsm.rewrapped == into_hsm.total == onwards.rewrapped == onwards.total
    assert into_hsm.new_key_id == onwards.old_key_id
    after = make_keyring(softhsm.provider(key_label="kek-2027"))
    after.verify_master_key()
    assert after.open(TENANT, purpose=PURPOSE, record_id="r1", sealed=sealed) == b"secret"
    with pytest.raises(MasterKeyMismatchError):
        make_keyring(softhsm.provider()).verify_master_key()


@pytest.mark.e2e
def test_server_initialises_and_serves_with_the_master_key_in_softhsm(
    softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    assert softhsm.create_key()
    server = ServerProcess(
        tmp_path / "data",
        env={
            "BASTION_CRYPTO__PROVIDER": "pkcs11",
            "BASTION_CRYPTO__PKCS11__MODULE_PATH": str(softhsm.module_path),
            "BASTION_CRYPTO__PKCS11__TOKEN_LABEL": softhsm.token_label,
            "BASTION_CRYPTO__PKCS11__KEY_LABEL": KEY_LABEL,
            "BASTION_CRYPTO__PKCS11__USER_PIN": USER_PIN,
            # SOFTHSM2_CONF is inherited from the fixture's environment, as from an operator's.
        },
    )
    try:
        server.init()
        assert not (server.data_dir / "master.key").exists()
        server.start()
        assert server.client.get("/readyz").status_code == 200
    finally:
        server.stop()
    assert USER_PIN not in server.output()


@pytest.mark.e2e
def test_serve_refuses_to_start_with_a_wrong_pin(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    assert softhsm.create_key()
    env = {
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_ENV": "test",
        "BASTION_CRYPTO__PROVIDER": "pkcs11",
        "BASTION_CRYPTO__PKCS11__MODULE_PATH": str(softhsm.module_path),
        "BASTION_CRYPTO__PKCS11__TOKEN_LABEL": softhsm.token_label,
        "BASTION_CRYPTO__PKCS11__USER_PIN": "0000-wrong",
    }

    result = run_cli("init", env=env)

    assert result.returncode == 1
    assert "refused the user PIN" in result.stderr
    assert "Traceback" not in result.stderr
    assert "0000-wrong" not in result.stderr + result.stdout
