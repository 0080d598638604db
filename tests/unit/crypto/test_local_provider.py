"""The local master-key provider: permissions, key id, wrapping bound to its context."""

from __future__ import annotations

import base64

import pytest

from bastion.crypto import KeyFileError, KeyUnwrapError, LocalKeyProvider, create_key_file
from bastion.crypto.kms.local import replace_key_file


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "master.key"
    create_key_file(path)
    return path


def test_a_new_key_file_is_0600_and_never_overwritten(key_file):
    assert key_file.stat().st_mode & 0o777 == 0o600
    before = key_file.read_bytes()
    assert create_key_file(key_file) is False
    assert key_file.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_a_group_or_world_readable_key_file_is_refused(key_file, mode):
    key_file.chmod(mode)
    provider = LocalKeyProvider(key_file=key_file)
    with pytest.raises(KeyFileError, match=f"readable by other users \\(mode {mode:04o}\\)"):
        provider.check()
    with pytest.raises(KeyFileError, match="chmod 600"):
        provider.wrap(b"k" * 32, context=b"c")


def test_a_missing_or_malformed_key_file_is_refused(tmp_path, key_file):
    with pytest.raises(KeyFileError, match="run `bastion init`"):
        LocalKeyProvider(key_file=tmp_path / "absent.key").check()
    key_file.write_bytes(b"not base64 at all!\n")
    with pytest.raises(KeyFileError, match="not valid base64"):
        LocalKeyProvider(key_file=key_file).check()
    key_file.write_bytes(base64.b64encode(b"short"))
    with pytest.raises(KeyFileError, match="must hold 32 bytes, found 5"):
        LocalKeyProvider(key_file=key_file).check()


def test_wrap_round_trips_and_is_bound_to_its_context(key_file):
    provider = LocalKeyProvider(key_file=key_file)
    data_key = bytes(range(32))
    wrapped = provider.wrap(data_key, context=b"tenant-a|1")
    assert data_key not in wrapped
    assert provider.unwrap(wrapped, context=b"tenant-a|1") == data_key
    assert provider.wrap(data_key, context=b"tenant-a|1") != wrapped  # fresh nonce
    with pytest.raises(KeyUnwrapError, match="does not authenticate"):
        provider.unwrap(wrapped, context=b"tenant-b|1")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(KeyUnwrapError):
        provider.unwrap(bytes(tampered), context=b"tenant-a|1")
    with pytest.raises(KeyUnwrapError, match="malformed"):
        provider.unwrap(wrapped[:10], context=b"tenant-a|1")


def test_another_key_cannot_unwrap_and_has_another_id(tmp_path, key_file):
    other_file = tmp_path / "other.key"
    create_key_file(other_file)
    provider, other = LocalKeyProvider(key_file=key_file), LocalKeyProvider(key_file=other_file)
    wrapped = provider.wrap(b"k" * 32, context=b"c")
    with pytest.raises(KeyUnwrapError):
        other.unwrap(wrapped, context=b"c")
    assert provider.key_id.startswith("local:")
    assert len(provider.key_id) == len("local:") + 16
    assert provider.key_id != other.key_id
    assert LocalKeyProvider(key_file=key_file).key_id == provider.key_id
    # The id reveals nothing of the key itself.
    raw = base64.b64decode(key_file.read_bytes())
    assert raw.hex()[:16] not in provider.key_id


def test_the_key_can_come_from_base64_settings(key_file):
    text = key_file.read_text().strip()
    provider = LocalKeyProvider(key_file=key_file.parent / "unused", key_base64=text)
    provider.check()
    assert provider.key_id == LocalKeyProvider(key_file=key_file).key_id
    assert "BASTION_CRYPTO__KEY_BASE64" in provider.description
    with pytest.raises(KeyFileError, match="BASTION_CRYPTO__KEY_BASE64"):
        LocalKeyProvider(key_file=key_file, key_base64="@@@").check()


def test_replacing_the_key_file_is_atomic_and_0600(tmp_path, key_file):
    new = tmp_path / "new.key"
    create_key_file(new)
    replace_key_file(key_file, source=new)
    assert key_file.read_bytes() == new.read_bytes()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key", "new.key"]
