"""The pkcs11 master-key provider against a real SoftHSM2 token."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag

from bastion.crypto.errors import CryptoError, HsmError, HsmPinError, KeyUnwrapError
from bastion.crypto.kms.base import KeyProvider
from bastion.crypto.kms.pkcs11 import IV_BYTES, Pkcs11KeyProvider, reload_module

from .conftest import USER_PIN, SoftHsmToken

CONTEXT = b"tenant:7f3a|dek:v1"


def _library(softhsm: SoftHsmToken) -> Any:
    # The provider loads the library by its real path; python-pkcs11 caches libraries by the
    # string it was given, and initialising the same library twice fails.
    return pkcs11.lib(str(softhsm.module_path.resolve()))


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert text
    assert "\n" not in text
    return text


def test_provider_conforms_to_the_key_provider_protocol(provider: Pkcs11KeyProvider) -> None:
    conforming: KeyProvider = provider
    assert "bastion-test" in conforming.description
    assert USER_PIN not in repr(provider)
    assert USER_PIN not in provider.description


def test_wrapped_key_round_trips(provider: Pkcs11KeyProvider) -> None:
    data_key = secrets.token_bytes(32)

    wrapped = provider.wrap(data_key, context=CONTEXT)

    assert data_key not in wrapped
    assert len(wrapped) == 1 + IV_BYTES + len(data_key) + 16
    assert provider.unwrap(wrapped, context=CONTEXT) == data_key


def test_each_wrap_uses_a_fresh_iv(provider: Pkcs11KeyProvider) -> None:
    data_key = secrets.token_bytes(32)
    blobs = {provider.wrap(data_key, context=CONTEXT) for _ in range(20)}
    assert len({blob[1 : 1 + IV_BYTES] for blob in blobs}) == 20


def test_check_accepts_a_generated_key(provider: Pkcs11KeyProvider) -> None:
    provider.check()


def test_unwrap_with_another_context_fails(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(secrets.token_bytes(32), context=CONTEXT)

    with pytest.raises(KeyUnwrapError) as caught:
        provider.unwrap(wrapped, context=b"tenant:other|dek:v1")

    assert "failed authentication" in _one_line(caught.value)


@pytest.mark.parametrize(
    "where",
    ["version", "iv", "ciphertext", "tag", "truncated", "extended", "empty"],
)
def test_tampered_blob_fails(provider: Pkcs11KeyProvider, where: str) -> None:
    wrapped = bytearray(provider.wrap(secrets.token_bytes(32), context=CONTEXT))
    if where == "version":
        wrapped[0] ^= 0x01
    elif where == "iv":
        wrapped[1] ^= 0x80
    elif where == "ciphertext":
        wrapped[1 + IV_BYTES + 3] ^= 0x01
    elif where == "tag":
        wrapped[-1] ^= 0x01
    elif where == "truncated":
        del wrapped[-1]
    elif where == "extended":
        wrapped.append(0)
    else:
        wrapped.clear()

    with pytest.raises(KeyUnwrapError) as caught:
        provider.unwrap(bytes(wrapped), context=CONTEXT)

    _one_line(caught.value)


def test_key_wrapped_under_another_master_key_fails(softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key("kek-a")
    assert softhsm.create_key("kek-b")
    wrapped = softhsm.provider(key_label="kek-a").wrap(b"k" * 32, context=CONTEXT)

    with pytest.raises(KeyUnwrapError):
        softhsm.provider(key_label="kek-b").unwrap(wrapped, context=CONTEXT)


def test_wrong_pin_is_a_clear_error_and_is_not_retried(softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()
    # Drop the session create_master_key logged in, so the token itself judges the PIN.
    reload_module(softhsm.module_path)
    wrong = softhsm.provider(user_pin="0000-wrong")

    with pytest.raises(HsmPinError) as caught:
        wrong.check()
    message = _one_line(caught.value)
    assert "refused the user PIN" in message
    assert "BASTION_CRYPTO__PKCS11__USER_PIN" in message
    assert "0000-wrong" not in message

    # Not tried again: the token counts failures towards locking the PIN.
    token = _library(softhsm).get_token(token_label=softhsm.token_label)
    assert token.flags & pkcs11.TokenFlag.USER_PIN_COUNT_LOW
    reload_module(softhsm.module_path)
    with pytest.raises(HsmPinError):
        wrong.wrap(b"k" * 32, context=CONTEXT)
    # The right PIN still works: one failure did not lock the token.
    softhsm.provider().check()


def test_wrong_pin_cannot_ride_on_another_providers_login(softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()
    softhsm.provider().check()

    with pytest.raises(HsmPinError) as caught:
        softhsm.provider(user_pin="0000-wrong").check()

    assert "refused the user PIN" in _one_line(caught.value)


def test_missing_key_label_is_a_clear_error(softhsm: SoftHsmToken) -> None:
    assert softhsm.create_key()

    with pytest.raises(HsmError) as caught:
        softhsm.provider(key_label="no-such-key").check()

    message = _one_line(caught.value)
    assert "no AES key labelled 'no-such-key'" in message
    assert "BASTION_CRYPTO__PKCS11__KEY_LABEL" in message


def test_missing_token_is_a_clear_error(softhsm: SoftHsmToken) -> None:
    missing = Pkcs11KeyProvider(
        module_path=softhsm.module_path,
        token_label="no-such-token",
        key_label="bastion-kek",
        user_pin=softhsm.user_pin,
    )

    with pytest.raises(HsmError) as caught:
        missing.wrap(b"k" * 32, context=CONTEXT)

    assert "'no-such-token' not found" in _one_line(caught.value)


def test_missing_module_is_a_clear_error(tmp_path: Path, softhsm: SoftHsmToken) -> None:
    absent = tmp_path / "libnothing.so"
    provider = Pkcs11KeyProvider(
        module_path=absent, token_label="t", key_label="k", user_pin=softhsm.user_pin
    )

    with pytest.raises(HsmError) as caught:
        provider.check()

    message = _one_line(caught.value)
    assert str(absent) in message
    assert "softhsm2" in message


def test_a_file_that_is_no_library_is_a_clear_error(tmp_path: Path, softhsm: SoftHsmToken) -> None:
    bogus = tmp_path / "libbogus.so"
    bogus.write_bytes(b"not an ELF file")
    provider = Pkcs11KeyProvider(
        module_path=bogus, token_label="t", key_label="k", user_pin=softhsm.user_pin
    )

    with pytest.raises(HsmError) as caught:
        provider.check()

    assert "cannot be loaded" in _one_line(caught.value)


def test_errors_are_crypto_errors_never_raw_pkcs11_ones(softhsm: SoftHsmToken) -> None:
    assert issubclass(HsmError, CryptoError)
    assert issubclass(KeyUnwrapError, CryptoError)
    with pytest.raises(CryptoError) as caught:
        softhsm.provider(key_label="absent").wrap(b"k", context=CONTEXT)
    assert not isinstance(caught.value, pkcs11.PKCS11Error)


def _make_raw_key(
    softhsm: SoftHsmToken, label: str, *, bits: int, sensitive: bool, extractable: bool
) -> None:
    token = _library(softhsm).get_token(token_label=softhsm.token_label)
    # The provider's check() logged this process in and sessions share that login; opening one
    # with the PIN again would fail (already logged in), and closing it would log everyone out.
    session = token.open(rw=True)
    session.generate_key(
        KeyType.AES,
        bits,
        label=label,
        store=True,
        capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
        template={Attribute.SENSITIVE: sensitive, Attribute.EXTRACTABLE: extractable},
    )
    session.close()


@pytest.mark.parametrize(
    ("attributes", "complaint"),
    [
        ({"bits": 128, "sensitive": True, "extractable": False}, "must be AES-256"),
        ({"bits": 256, "sensitive": True, "extractable": True}, "extractable (CKA_EXTRACTABLE)"),
        ({"bits": 256, "sensitive": False, "extractable": False}, "not sensitive (CKA_SENSITIVE)"),
    ],
)
def test_check_refuses_a_weak_or_exportable_key(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken, attributes: dict[str, Any], complaint: str
) -> None:
    provider.check()
    _make_raw_key(softhsm, "weak", **attributes)

    with pytest.raises(HsmError) as caught:
        softhsm.provider(key_label="weak").check()

    assert complaint in _one_line(caught.value)


def test_created_master_key_cannot_leave_the_token(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken
) -> None:
    provider.check()
    token = _library(softhsm).get_token(token_label=softhsm.token_label)
    session = token.open()
    key = session.get_key(label="bastion-kek", key_type=KeyType.AES)
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.WRAP] is False
    with pytest.raises(pkcs11.AttributeSensitive):
        key[Attribute.VALUE]
    session.close()


def test_create_master_key_never_overwrites(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken
) -> None:
    before = provider.key_id
    assert softhsm.create_key() is False
    assert softhsm.provider().key_id == before


def test_key_id_is_stable_across_instances_and_sessions(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken
) -> None:
    key_id = provider.key_id
    assert key_id.startswith("pkcs11:id=")
    assert ";kcv=" in key_id
    assert softhsm.provider().key_id == key_id
    reload_module(softhsm.module_path)
    assert softhsm.provider().key_id == key_id
    assert softhsm.create_key("another-kek")
    assert softhsm.provider(key_label="another-kek").key_id != key_id


def test_provider_recovers_after_the_library_is_reloaded(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(b"k" * 32, context=CONTEXT)
    reload_module(provider._module_path)

    assert provider.unwrap(wrapped, context=CONTEXT) == b"k" * 32


def test_two_providers_on_two_threads_round_trip_200_keys_each(
    provider: Pkcs11KeyProvider, softhsm: SoftHsmToken
) -> None:
    providers = [provider, softhsm.provider()]
    start = threading.Barrier(len(providers))

    def work(index: int) -> list[tuple[bytes, bytes, bytes]]:
        own = providers[index]
        start.wait(timeout=10)
        results = []
        for n in range(200):
            data_key = secrets.token_bytes(32)
            context = f"tenant:{index}|dek:{n}".encode()
            wrapped = own.wrap(data_key, context=context)
            results.append((data_key, context, wrapped))
            assert own.unwrap(wrapped, context=context) == data_key
        return results

    with ThreadPoolExecutor(max_workers=len(providers)) as pool:
        batches = list(pool.map(work, range(len(providers))))

    assert sum(len(batch) for batch in batches) == 400
    ivs = {wrapped[1 : 1 + IV_BYTES] for batch in batches for _, _, wrapped in batch}
    assert len(ivs) == 400
    # Same master key: each provider opens the other's keys too.
    for batch, reader in zip(batches, reversed(providers), strict=True):
        for data_key, context, wrapped in batch:
            assert reader.unwrap(wrapped, context=context) == data_key
