"""Streaming AES-256-GCM: chunks bound to their stream, index and finality; per-stream keys."""

import pytest

from bastion.crypto import IntegrityCheckError, LocalKeyProvider, StreamKeys, create_key_file
from bastion.crypto.errors import KeyUnwrapError


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "master.key"
    create_key_file(path)
    return StreamKeys(LocalKeyProvider(key_file=path))


def test_chunks_round_trip_in_order(keys):
    sealer, wrapped = keys.new_stream("bk-1")
    sealed = [sealer.seal(i, f"chunk {i}".encode(), final=i == 2) for i in range(3)]
    opener = keys.open_stream("bk-1", wrapped)
    assert [opener.open(i, s, final=i == 2) for i, s in enumerate(sealed)] == [
        b"chunk 0",
        b"chunk 1",
        b"chunk 2",
    ]


def test_each_stream_gets_a_fresh_key(keys):
    first, wrapped_first = keys.new_stream("bk-1")
    second, wrapped_second = keys.new_stream("bk-1")
    assert wrapped_first != wrapped_second
    assert first.seal(0, b"same", final=True) != second.seal(0, b"same", final=True)


def test_a_flipped_bit_names_the_chunk(keys):
    sealer, wrapped = keys.new_stream("bk-1")
    sealed = bytearray(sealer.seal(0, b"x" * 100, final=True))
    sealed[10] ^= 1
    with pytest.raises(IntegrityCheckError, match="chunk 0"):
        keys.open_stream("bk-1", wrapped).open(0, bytes(sealed), final=True)


@pytest.mark.parametrize(
    ("index", "final"),
    [(1, False), (0, True)],
    ids=["moved-to-another-position", "claimed-final-after-truncation"],
)
def test_moved_or_cut_chunks_fail(keys, index, final):
    sealer, wrapped = keys.new_stream("bk-1")
    first = sealer.seal(0, b"first", final=False)
    sealer.seal(1, b"second", final=True)
    with pytest.raises(IntegrityCheckError, match=f"chunk {index}"):
        keys.open_stream("bk-1", wrapped).open(index, first, final=final)


def test_a_chunk_from_another_stream_fails(keys):
    sealer, _ = keys.new_stream("bk-1")
    _, other_wrapped = keys.new_stream("bk-2")
    with pytest.raises(IntegrityCheckError):
        keys.open_stream("bk-2", other_wrapped).open(
            0, sealer.seal(0, b"x", final=True), final=True
        )


def test_a_wrapped_key_does_not_unwrap_for_another_stream(keys):
    _, wrapped = keys.new_stream("bk-1")
    with pytest.raises(KeyUnwrapError):
        keys.open_stream("bk-2", wrapped)


def test_another_master_key_cannot_open_the_stream(keys, tmp_path):
    _, wrapped = keys.new_stream("bk-1")
    other = tmp_path / "other.key"
    create_key_file(other)
    with pytest.raises(KeyUnwrapError):
        StreamKeys(LocalKeyProvider(key_file=other)).open_stream("bk-1", wrapped)


def test_the_sealer_refuses_to_reuse_or_skip_an_index(keys):
    sealer, _ = keys.new_stream("bk-1")
    sealer.seal(0, b"a", final=False)
    with pytest.raises(ValueError, match="out of order"):
        sealer.seal(0, b"again", final=False)
    with pytest.raises(ValueError, match="out of order"):
        sealer.seal(2, b"skipped", final=False)


def test_nothing_is_sealed_after_the_final_chunk(keys):
    sealer, _ = keys.new_stream("bk-1")
    sealer.seal(0, b"a", final=True)
    with pytest.raises(ValueError, match="out of order"):
        sealer.seal(1, b"more", final=True)


def test_a_short_chunk_is_reported_truncated(keys):
    _, wrapped = keys.new_stream("bk-1")
    with pytest.raises(IntegrityCheckError, match="chunk 3 is truncated"):
        keys.open_stream("bk-1", wrapped).open(3, b"short", final=True)


@pytest.mark.parametrize("stream_id", ["", "x" * 129])
def test_stream_ids_are_bounded(keys, stream_id):
    with pytest.raises(ValueError, match="stream id"):
        keys.new_stream(stream_id)


def test_the_master_key_id_is_exposed_not_the_key(keys):
    assert keys.master_key_id.startswith("local:")
