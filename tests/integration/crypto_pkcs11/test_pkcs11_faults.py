"""Token states SoftHSM2 can be put in, and device faults it cannot produce on demand.

The faults are injected at the one seam where the provider meets the token's key object
(``_find_key``), so the provider's own error handling runs unchanged.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag

from bastion.crypto.errors import HsmError
from bastion.crypto.kms import pkcs11 as provider_module
from bastion.crypto.kms import pkcs11_library
from bastion.crypto.kms.pkcs11 import Pkcs11KeyProvider, reload_module

from .conftest import SO_PIN, USER_PIN, SoftHsmToken

CONTEXT = b"tenant:1|dek:v1"


def _token(softhsm: SoftHsmToken) -> Any:
    library = pkcs11.lib(str(softhsm.module_path.resolve()))
    return library.get_token(token_label=softhsm.token_label)


def _raw_key(softhsm: SoftHsmToken, label: str, capabilities: MechanismFlag) -> None:
    # Sessions share the process's login (the provider logged in first); closing this one,
    # opened without a PIN, does not log the provider out.
    session = _token(softhsm).open(rw=True)
    session.generate_key(
        KeyType.AES,
        256,
        label=label,
        store=True,
        capabilities=capabilities,
        template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
    session.close()


def test_two_tokens_with_one_label_are_a_clear_error(softhsm: SoftHsmToken) -> None:
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            softhsm.token_label,
            "--pin",
            USER_PIN,
            "--so-pin",
            SO_PIN,
        ],
        env=dict(os.environ),
        check=True,
        capture_output=True,
        timeout=30,
    )
    reload_module(softhsm.module_path)

    with pytest.raises(HsmError, match="ambiguous: several tokens carry this label"):
        softhsm.provider().check()


def test_a_login_made_elsewhere_in_the_process_is_shared(softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()
    reload_module(softhsm.module_path)
    # Another component of the process logs in first; the provider must not fail on that.
    other = _token(softhsm).open(user_pin=USER_PIN)

    provider = softhsm.provider()
    provider.check()
    assert provider.unwrap(provider.wrap(b"k" * 32, context=CONTEXT), context=CONTEXT) == b"k" * 32
    del other  # never closed: closing a logged-in session would log the provider out too


def test_two_keys_with_one_label_are_a_clear_error(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken
) -> None:
    provider.check()
    _raw_key(softhsm, "twin", MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)
    _raw_key(softhsm, "twin", MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)

    with pytest.raises(HsmError, match="several AES keys labelled 'twin'"):
        softhsm.provider(key_label="twin").check()


def test_a_key_not_allowed_to_encrypt_is_refused(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken
) -> None:
    provider.check()
    _raw_key(softhsm, "mac-only", MechanismFlag.SIGN | MechanismFlag.VERIFY)

    with pytest.raises(HsmError, match="not allowed to encrypt and decrypt"):
        softhsm.provider(key_label="mac-only").check()


def test_a_session_closed_behind_the_providers_back_is_reopened(
    provider: Pkcs11KeyProvider,
) -> None:
    wrapped = provider.wrap(b"k" * 32, context=CONTEXT)
    module = pkcs11_library.load_module(provider._module_path)
    module.sessions[provider._token_label].session.close()  # also logs the token out

    assert provider.unwrap(wrapped, context=CONTEXT) == b"k" * 32
    assert provider.unwrap(provider.wrap(b"j" * 32, context=CONTEXT), context=CONTEXT) == b"j" * 32


class _FaultyCipher:
    """Stands in for the token's key object: every call fails with ``error`` (or lies)."""

    def __init__(self, error: pkcs11.PKCS11Error | None) -> None:
        self.error = error
        self.calls = 0

    def encrypt(self, data: bytes, **_: Any) -> bytes:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return data + bytes(16)

    def decrypt(self, data: bytes, **_: Any) -> bytes:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return secrets.token_bytes(len(data) - 16)  # a token that answers garbage


@pytest.fixture
def inject(provider: Pkcs11KeyProvider, monkeypatch: pytest.MonkeyPatch) -> Any:
    provider.check()
    real_find_key = provider_module._find_key

    def install(error: pkcs11.PKCS11Error | None) -> _FaultyCipher:
        fake = _FaultyCipher(error)

        def find_key(session: Any, **kwargs: Any) -> Any:
            real = real_find_key(session, **kwargs)
            return provider_module._MasterKey(obj=real.obj, encryptor=fake, decryptor=fake)  # type: ignore[arg-type]

        monkeypatch.setattr(provider_module, "_find_key", find_key)
        reload_module(provider._module_path)  # drop the cached real key
        return fake

    return install


def test_a_session_that_stays_dead_is_a_clear_error_after_one_retry(
    inject: Any, provider: Pkcs11KeyProvider
) -> None:
    fake = inject(pkcs11.SessionHandleInvalid())

    with pytest.raises(HsmError, match="cannot wrap a data key: SessionHandleInvalid"):
        provider.wrap(b"k" * 32, context=CONTEXT)
    assert fake.calls == 2


def test_a_token_without_aes_gcm_is_a_clear_error(inject: Any, provider: Pkcs11KeyProvider) -> None:
    inject(pkcs11.MechanismInvalid())

    with pytest.raises(HsmError, match=r"does not support AES-GCM \(CKM_AES_GCM\)"):
        provider.wrap(b"k" * 32, context=CONTEXT)


def test_a_device_error_is_a_clear_error(inject: Any, provider: Pkcs11KeyProvider) -> None:
    fake = inject(pkcs11.DeviceError())

    with pytest.raises(HsmError, match="cannot wrap a data key: DeviceError"):
        provider.wrap(b"k" * 32, context=CONTEXT)
    assert fake.calls == 1  # not a stale session: no retry


def test_a_token_that_answers_garbage_fails_the_self_test(
    inject: Any, provider: Pkcs11KeyProvider
) -> None:
    inject(None)

    with pytest.raises(HsmError, match="failed its wrap/unwrap self-test"):
        provider.check()


class _BareKey:
    """A key object on a token that offers neither CKA_ID nor CKA_CHECK_VALUE."""

    label = "bare-kek"

    def __getitem__(self, attribute: Attribute) -> Any:
        raise pkcs11.AttributeTypeInvalid


def test_key_id_falls_back_to_the_label_on_a_token_without_id_or_check_value(
    provider: Pkcs11KeyProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_key = provider_module._find_key

    def find_key(session: Any, **kwargs: Any) -> Any:
        real = real_find_key(session, **kwargs)
        return provider_module._MasterKey(
            obj=_BareKey(),  # type: ignore[arg-type]
            encryptor=real.encryptor,
            decryptor=real.decryptor,
        )

    monkeypatch.setattr(provider_module, "_find_key", find_key)

    assert provider.key_id == "pkcs11:label=bare-kek"
    assert provider.key_id == "pkcs11:label=bare-kek"  # cached
