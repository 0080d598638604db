"""`bastion keys rotate-kek --new-key-label`: the master key moves into a PKCS#11 token, or on to
another key in it, through the CLI; misuse is refused with one line and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import run_cli

from .conftest import KEY_LABEL, USER_PIN, SoftHsmToken

NEW_LABEL = "bastion-kek-2027"

# Each CLI run starts a Python process (several seconds on a loaded machine); six of them in one
# test outgrow the default 120 s.
pytestmark = pytest.mark.timeout(600)


def _env(data_dir: Path, softhsm: SoftHsmToken, *, provider: str, key_label: str = KEY_LABEL):
    return {
        "BASTION_DATA_DIR": str(data_dir),
        "BASTION_ENV": "test",
        "BASTION_CRYPTO__PROVIDER": provider,
        "BASTION_CRYPTO__PKCS11__MODULE_PATH": str(softhsm.module_path),
        "BASTION_CRYPTO__PKCS11__TOKEN_LABEL": softhsm.token_label,
        "BASTION_CRYPTO__PKCS11__KEY_LABEL": key_label,
        "BASTION_CRYPTO__PKCS11__USER_PIN": USER_PIN,
    }


def _works(env) -> None:
    # Unwrapping the signing key proves the configured master key is the keyring's.
    exported = run_cli("keys", "export-public", env=env)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("-----BEGIN PUBLIC KEY-----")


def test_a_key_file_moves_into_the_token_and_on_to_a_new_label(
    softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    assert softhsm.create_key(KEY_LABEL)
    assert softhsm.create_key(NEW_LABEL)
    data = tmp_path / "data"
    local = _env(data, softhsm, provider="local")
    assert run_cli("init", env=local).returncode == 0

    into = run_cli("keys", "rotate-kek", "--new-key-label", KEY_LABEL, env=local)
    assert into.returncode == 0, into.stderr
    assert f"BASTION_CRYPTO__PKCS11__KEY_LABEL={KEY_LABEL}" in into.stdout
    in_token = _env(data, softhsm, provider="pkcs11")

    onwards = run_cli("keys", "rotate-kek", "--new-key-label", NEW_LABEL, env=in_token)
    assert onwards.returncode == 0, onwards.stderr
    _works(_env(data, softhsm, provider="pkcs11", key_label=NEW_LABEL))
    # The old label no longer opens the keyring: every key was rewrapped.
    stale = run_cli("keys", "export-public", env=in_token)
    assert stale.returncode != 0
    assert "Traceback" not in stale.stderr
    for output in (into, onwards, stale):
        assert USER_PIN not in output.stdout + output.stderr
    verify = run_cli(
        "audit", "verify", env=_env(data, softhsm, provider="pkcs11", key_label=NEW_LABEL)
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_misuse_is_refused_and_changes_nothing(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    assert softhsm.create_key(KEY_LABEL)
    env = _env(tmp_path / "data", softhsm, provider="pkcs11")
    assert run_cli("init", env=env).returncode == 0
    new_file = tmp_path / "new.key"
    for args, message in (
        (("--new-key-label", NEW_LABEL, "--new-key-file", str(new_file)), "exactly one of"),
        (("--new-key-label", KEY_LABEL), "already configured"),
        (("--new-key-label", "no-such-key"), "no-such-key"),
    ):
        result = run_cli("keys", "rotate-kek", *args, env=env)
        assert result.returncode != 0, args
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    _works(env)
