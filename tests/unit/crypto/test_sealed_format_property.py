"""Property: whatever bytes reach ``open``, the answer is the plaintext or IntegrityCheckError.

Never another exception, never garbage. Runs against a real keyring on a SQLite file in a
temporary directory.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.crypto import IntegrityCheckError, Keyring, LocalKeyProvider, create_key_file
from bastion.crypto.envelope import header
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.kernel.clock import FrozenClock

TENANT = "tenant-property"
PURPOSE = "records:things"
RECORD = "thing-1"
PLAINTEXT = b"the one true plaintext"


@pytest.fixture(scope="module")
def sealed_world():
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        create_key_file(root / "master.key")
        engine = make_engine(f"sqlite:///{root / 'keys.db'}", create=True)
        upgrade_to_head(engine)
        keyring = Keyring(
            uow=UnitOfWork(engine),
            provider=LocalKeyProvider(key_file=root / "master.key"),
            clock=FrozenClock(datetime(2026, 11, 22, tzinfo=UTC)),
        )
        keyring.initialise()
        keyring.provision_tenant(TENANT)
        keyring.rotate(TENANT)  # versions 1 and 2 both exist
        good = keyring.seal(TENANT, purpose=PURPOSE, record_id=RECORD, plaintext=PLAINTEXT)
        yield keyring, good
        engine.dispose()


def _open(keyring, data):
    return keyring.open(TENANT, purpose=PURPOSE, record_id=RECORD, sealed=data)


def _assert_rejected(keyring, data, good):
    if data == good:  # only the genuine value may open, and only to its own plaintext
        assert _open(keyring, data) == PLAINTEXT
        return
    # pytest.raises lets any other exception type through as a failure: exactly the property.
    with pytest.raises(IntegrityCheckError, match=RECORD):
        _open(keyring, data)


PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(data=st.binary(max_size=200))
def test_random_bytes_never_open(sealed_world, data):
    keyring, good = sealed_world
    _assert_rejected(keyring, data, good)


@PROPERTY
@given(
    kind=st.integers(0, 255),
    version=st.integers(0, 2**32 - 1),
    fmt=st.integers(0, 255),
    body=st.binary(max_size=120),
)
def test_well_shaped_headers_with_any_fields_never_open(sealed_world, kind, version, fmt, body):
    keyring, good = sealed_world
    data = bytes([fmt]) + header(kind, version)[1:] + body
    _assert_rejected(keyring, data, good)


@PROPERTY
@given(position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_any_single_byte_change_is_caught(sealed_world, position, flip):
    keyring, good = sealed_world
    mutated = bytearray(good)
    mutated[position % len(good)] ^= flip
    with pytest.raises(IntegrityCheckError, match=RECORD):
        _open(keyring, bytes(mutated))


@PROPERTY
@given(cut=st.integers(0, 200), extra=st.binary(max_size=40))
def test_truncated_or_extended_values_never_open(sealed_world, cut, extra):
    keyring, good = sealed_world
    data = good[: cut % len(good)] + extra
    _assert_rejected(keyring, data, good)
