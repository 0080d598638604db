"""Properties of the crypto package's encodings: the places a ciphertext is bound to.

The example tests (tests/unit/crypto) pin a few boundaries; these say it for every input:
- the associated data is injective in (key header, owner, purpose, record id), so no two places
  share one, and a sealed value cannot be moved between them;
- wrap contexts are injective in (scope, owner, version, slot);
- ``hmac_sha256``'s length-prefixed message encoding is injective in its parts;
- ``parse_header`` is total: a SealedHeader or MalformedSealedError for any input.
- sealing with any names and plaintext opens to that plaintext at exactly that place; names too
  long to bind are InvalidInput, never a crash.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.crypto import IntegrityCheckError, Keyring, LocalKeyProvider, create_key_file
from bastion.crypto.envelope import (
    KIND_SYSTEM,
    KIND_TENANT,
    MalformedSealedError,
    SealedHeader,
    associated_data,
    header,
    parse_header,
    wrap_context,
)
from bastion.crypto.primitives import hmac_sha256
from bastion.db import UnitOfWork, make_engine, upgrade_to_head
from bastion.errors import InvalidInput
from bastion.kernel.clock import FrozenClock

# Small alphabets make boundary collisions ("ab","c") vs ("a","bc") likely to be tried.
NAME = st.text(alphabet="ab:\x00é", max_size=6)
UNICODE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
PLACE = st.tuples(
    st.sampled_from([KIND_TENANT, KIND_SYSTEM]), st.integers(1, 2**32 - 1), NAME, NAME, NAME
)


@given(first=PLACE, second=PLACE)
def test_associated_data_is_injective(first, second):
    def encode(place):
        kind, version, owner, purpose, record = place
        return associated_data(header(kind, version), owner, purpose, record)

    assert (encode(first) == encode(second)) == (first == second)


CONTEXT = st.tuples(NAME, NAME, st.integers(0, 2**40), NAME)


@given(first=CONTEXT, second=CONTEXT)
def test_wrap_contexts_are_injective(first, second):
    assert (wrap_context(*first) == wrap_context(*second)) == (first == second)


@given(first=st.lists(st.binary(max_size=4), max_size=4), second=st.lists(st.binary(max_size=4)))
def test_hmac_parts_are_length_prefixed_so_boundaries_matter(first, second):
    key = bytes(32)
    same_mac = hmac_sha256(key, *first) == hmac_sha256(key, *second)
    assert same_mac == (first == second)


@given(data=st.binary(max_size=64) | st.text(max_size=10) | st.none() | st.integers())
def test_parse_header_is_total(data):
    try:
        parsed = parse_header(data)
    except MalformedSealedError:
        return
    assert isinstance(parsed, SealedHeader)
    assert parsed.kind in (KIND_TENANT, KIND_SYSTEM)
    assert parsed.version >= 1


@pytest.fixture(scope="module")
def keyring():
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
        keyring.provision_tenant("tenant-a")
        yield keyring
        engine.dispose()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    purpose=UNICODE | st.text(alphabet="é", min_size=500, max_size=600),
    record_id=UNICODE | st.text(alphabet="r", min_size=1020, max_size=1030),
    moved_to=UNICODE,
    plaintext=st.binary(max_size=300),
)
def test_sealing_with_any_names_opens_only_at_the_same_place(
    keyring, purpose, record_id, moved_to, plaintext
):
    try:
        sealed = keyring.seal("tenant-a", purpose=purpose, record_id=record_id, plaintext=plaintext)
    except InvalidInput:
        # Only names too long to bind are refused (purpose over 1,024 UTF-8 bytes, record id
        # over 1,024 characters), and the refusal is a clean 4xx-kind error.
        assert len(purpose.encode()) > 1024 or len(record_id) > 1024
        return
    opened = keyring.open("tenant-a", purpose=purpose, record_id=record_id, sealed=sealed)
    assert opened == plaintext
    if moved_to != record_id:
        with pytest.raises(IntegrityCheckError):
            keyring.open("tenant-a", purpose=purpose, record_id=moved_to, sealed=sealed)


def test_a_record_id_without_a_utf8_form_fails_its_integrity_check(keyring):
    sealed = keyring.seal("tenant-a", purpose="p", record_id="r", plaintext=b"x")
    with pytest.raises(IntegrityCheckError):
        keyring.open("tenant-a", purpose="p", record_id="\ud800", sealed=sealed)
    with pytest.raises(InvalidInput):
        keyring.seal("tenant-a", purpose="p", record_id="\ud800", plaintext=b"x")
