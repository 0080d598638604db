"""The ``KeyProvider`` contract, run on every implementation: local key file and PKCS#11."""

from __future__ import annotations

import pytest

from bastion.crypto import KeyUnwrapError, LocalKeyProvider, create_key_file
from bastion.crypto.kms.base import KeyProvider
from tests.integration.crypto_pkcs11.conftest import provider, softhsm  # noqa: F401 - fixtures


@pytest.fixture(params=["local", "pkcs11"])
def key_provider(request, tmp_path) -> KeyProvider:
    if request.param == "local":
        create_key_file(tmp_path / "master.key")
        return LocalKeyProvider(key_file=tmp_path / "master.key")
    return request.getfixturevalue("provider")


def test_wrap_round_trips_under_its_context(key_provider):
    key_provider.check()
    data_key = bytes(range(32))
    wrapped = key_provider.wrap(data_key, context=b"tenant-a|1|key")
    assert data_key not in wrapped
    assert key_provider.unwrap(wrapped, context=b"tenant-a|1|key") == data_key
    assert key_provider.wrap(data_key, context=b"tenant-a|1|key") != wrapped


def test_a_moved_or_altered_wrapped_key_does_not_unwrap(key_provider):
    wrapped = key_provider.wrap(b"k" * 32, context=b"tenant-a|1|key")
    with pytest.raises(KeyUnwrapError):
        key_provider.unwrap(wrapped, context=b"tenant-b|1|key")
    altered = bytearray(wrapped)
    altered[-1] ^= 1
    with pytest.raises(KeyUnwrapError):
        key_provider.unwrap(bytes(altered), context=b"tenant-a|1|key")
    with pytest.raises(KeyUnwrapError):
        key_provider.unwrap(b"\x01", context=b"tenant-a|1|key")


def test_the_key_id_is_stable_and_names_no_secret(key_provider):
    assert key_provider.key_id == key_provider.key_id
    assert 0 < len(key_provider.key_id) <= 64  # fits crypto_*_keys.kek_id
    assert key_provider.description
