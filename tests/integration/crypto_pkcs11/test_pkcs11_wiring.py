"""Settings and bootstrap select the pkcs11 provider; the fixture refuses to skip on CI."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from bastion import bootstrap
from bastion.crypto.kms.pkcs11 import Pkcs11KeyProvider
from bastion.errors import ConfigError
from bastion.settings import load_settings

from . import conftest
from .conftest import KEY_LABEL, USER_PIN, SoftHsmToken


def _pkcs11_crypto(softhsm: SoftHsmToken, **pkcs11: Any) -> dict[str, Any]:
    values = {
        "module_path": softhsm.module_path,
        "token_label": softhsm.token_label,
        "key_label": KEY_LABEL,
        "user_pin": softhsm.user_pin,
    }
    values.update(pkcs11)
    return {"provider": "pkcs11", "pkcs11": values}


def test_provider_pkcs11_requires_a_user_pin(make_settings: Any) -> None:
    with pytest.raises(ValidationError, match=r"user_pin is required"):
        make_settings(crypto={"provider": "pkcs11"})


def test_pkcs11_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_CRYPTO__PROVIDER", "pkcs11")
    monkeypatch.setenv("BASTION_CRYPTO__PKCS11__TOKEN_LABEL", "prod-token")
    monkeypatch.setenv("BASTION_CRYPTO__PKCS11__USER_PIN", "s3cret-pin")

    settings = load_settings()

    assert settings.crypto.provider == "pkcs11"
    assert settings.crypto.pkcs11.token_label == "prod-token"
    assert settings.crypto.pkcs11.user_pin == SecretStr("s3cret-pin")
    assert "s3cret-pin" not in repr(settings)


def test_a_misspelt_pkcs11_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_CRYPTO__PKCS11__USERPIN", "1234")
    with pytest.raises(ConfigError, match="BASTION_CRYPTO__PKCS11__USERPIN: unknown setting"):
        load_settings()


def test_build_wires_the_pkcs11_provider(make_settings: Any, softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()
    settings = make_settings(crypto=_pkcs11_crypto(softhsm))

    container = bootstrap.build(settings)
    try:
        assert isinstance(container.key_provider, Pkcs11KeyProvider)
        container.key_provider.check()
        assert "keys" not in bootstrap.readiness_problems(container)
    finally:
        container.engine.dispose()


def test_readiness_reports_a_refused_pin(make_settings: Any, softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()
    conftest.reload_module(softhsm.module_path)
    settings = make_settings(crypto=_pkcs11_crypto(softhsm, user_pin="0000-wrong"))

    container = bootstrap.build(settings)
    try:
        problems = bootstrap.readiness_problems(container)
    finally:
        container.engine.dispose()

    assert "refused the user PIN" in problems["keys"]
    assert USER_PIN not in problems["keys"]


def test_missing_softhsm_skips_locally_and_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest.shutil, "which", lambda _name: None)

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install softhsm2"):
        conftest.require_softhsm()

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install softhsm2"):
        conftest.require_softhsm()
