"""The payload pipeline and the signed manifest, in memory."""

import io
import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bastion.backup import BackupCorrupted, ManifestSignatureInvalid
from bastion.backup.manifest import ChainHead, Manifest, parse_manifest
from bastion.backup.stream import open_stream, seal_stream
from bastion.crypto import LocalKeyProvider, StreamKeys, create_key_file
from tests.support.audit import TestKeyring, verify_ed25519

BACKUP_ID = "bk-20261122T090000Z-0123abcd"
CHUNK = 64 * 1024


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "master.key"
    create_key_file(path)
    return StreamKeys(LocalKeyProvider(key_file=path))


@pytest.fixture
def signer():
    return TestKeyring()


def _plaintext():
    # Incompressible and compressible parts, so there are several chunks of both kinds.
    return os.urandom(300_000) + b"\0" * 2_000_000 + os.urandom(100_000)


def _backup(keys, signer, data):
    sealer, wrapped = keys.new_stream(BACKUP_ID)
    payload = io.BytesIO()
    sealed = seal_stream(
        io.BytesIO(data), payload, sealer=sealer, level=3, threads=1, chunk_bytes=CHUNK
    )
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    manifest = Manifest(
        backup_id=BACKUP_ID,
        created_at=now,
        completed_at=now,
        backend="sqlite",
        schema_revision="0005",
        server_version=None,
        snapshot_format="sqlite-database-file",
        plaintext_bytes=sealed.plaintext_bytes,
        plaintext_sha256=sealed.plaintext_sha256,
        compression_level=3,
        compressed_bytes=sealed.compressed_bytes,
        chunk_bytes=CHUNK,
        chunks=sealed.chunks,
        wrapped_key=wrapped,
        master_key_id=keys.master_key_id,
        audit_heads={"system": ChainHead(3, "ab" * 32)},
    ).signed(signer.sign, signer.signing_public_key())
    return payload.getvalue(), manifest


def test_round_trip_restores_the_exact_bytes(keys, signer):
    data = _plaintext()
    payload, manifest = _backup(keys, signer, data)
    assert len(manifest.chunks) > 2
    assert manifest.compressed_bytes < len(data) / 3
    out = io.BytesIO()
    opener = keys.open_stream(BACKUP_ID, manifest.wrapped_key)
    open_stream(io.BytesIO(payload), manifest, opener=opener, sink=out)
    assert out.getvalue() == data


def test_a_flipped_byte_anywhere_names_its_chunk(keys, signer):
    payload, manifest = _backup(keys, signer, _plaintext())
    opener = keys.open_stream(BACKUP_ID, manifest.wrapped_key)
    offset = 0
    for index, chunk in enumerate(manifest.chunks):
        for position in (offset, offset + chunk.size // 2, offset + chunk.size - 1):
            damaged = bytearray(payload)
            damaged[position] ^= 0x01
            with pytest.raises(BackupCorrupted, match=f"chunk {index} of"):
                open_stream(io.BytesIO(bytes(damaged)), manifest, opener=opener)
        offset += chunk.size


def test_a_truncated_payload_is_refused(keys, signer):
    payload, manifest = _backup(keys, signer, _plaintext())
    opener = keys.open_stream(BACKUP_ID, manifest.wrapped_key)
    last = len(manifest.chunks) - 1
    with pytest.raises(BackupCorrupted, match=f"chunk {last} of .* truncated"):
        open_stream(io.BytesIO(payload[:-10]), manifest, opener=opener)
    cut_at_boundary = payload[: -manifest.chunks[-1].size]
    with pytest.raises(BackupCorrupted, match=f"chunk {last} of .* truncated"):
        open_stream(io.BytesIO(cut_at_boundary), manifest, opener=opener)


def test_trailing_bytes_are_refused(keys, signer):
    payload, manifest = _backup(keys, signer, _plaintext())
    with pytest.raises(BackupCorrupted, match="after its last chunk"):
        open_stream(io.BytesIO(payload + b"x"), manifest, opener=None)


def test_a_manifest_that_drops_the_last_chunk_fails_authentication(keys, signer):
    # Even with a manifest re-signed to match (a stolen signing key), the final flag catches it.
    payload, manifest = _backup(keys, signer, _plaintext())
    shorter = replace(manifest, chunks=manifest.chunks[:-1]).signed(
        signer.sign, signer.signing_public_key()
    )
    opener = keys.open_stream(BACKUP_ID, manifest.wrapped_key)
    with pytest.raises(BackupCorrupted, match="failed authentication"):
        open_stream(io.BytesIO(payload[: shorter.payload_bytes]), shorter, opener=opener)


def test_the_manifest_round_trips_and_verifies(keys, signer):
    _, manifest = _backup(keys, signer, b"small")
    parsed = parse_manifest(manifest.to_json(), expected_id=BACKUP_ID)
    assert parsed == manifest
    parsed.verify_signature(signer.signing_public_key(), verify_ed25519)


def test_a_tampered_manifest_fails_its_signature(keys, signer):
    _, manifest = _backup(keys, signer, b"small")
    text = manifest.to_json().replace(b'"schema_revision": "0005"', b'"schema_revision": "0004"')
    parsed = parse_manifest(text, expected_id=BACKUP_ID)
    with pytest.raises(ManifestSignatureInvalid, match="does not verify"):
        parsed.verify_signature(signer.signing_public_key(), verify_ed25519)


def test_a_manifest_signed_by_another_key_is_refused(keys, signer):
    _, manifest = _backup(keys, signer, b"small")
    with pytest.raises(ManifestSignatureInvalid, match="not this installation"):
        manifest.verify_signature(TestKeyring().signing_public_key(), verify_ed25519)


@pytest.mark.parametrize(
    "document",
    [b"", b"not json", b"[]", b'{"format": "other", "version": 1}'],
    ids=["empty", "garbage", "array", "foreign"],
)
def test_malformed_manifests_are_refused(document):
    with pytest.raises(ManifestSignatureInvalid, match="malformed manifest"):
        parse_manifest(document, expected_id=BACKUP_ID)


def test_a_manifest_for_another_backup_is_refused(keys, signer):
    _, manifest = _backup(keys, signer, b"small")
    with pytest.raises(ManifestSignatureInvalid, match="names backup"):
        parse_manifest(manifest.to_json(), expected_id="bk-20261122T090000Z-ffffffff")


class _Zeros:
    """A large source that costs no memory itself."""

    def __init__(self, size):
        self.left = size

    def read(self, size=-1):
        size = min(size, self.left)
        self.left -= size
        return os.urandom(size // 2) + b"\0" * (size - size // 2)


class _Discard:
    def __init__(self):
        self.size = 0

    def write(self, data):
        self.size += len(data)
        return len(data)


def test_memory_stays_constant_whatever_the_size(keys):
    import tracemalloc

    sealer, _ = keys.new_stream(BACKUP_ID)
    sink = _Discard()
    tracemalloc.start()
    try:
        sealed = seal_stream(_Zeros(96 * 1024 * 1024), sink, sealer=sealer, level=1, threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sealed.plaintext_bytes == 96 * 1024 * 1024
    # A few read blocks and chunks in flight (Python-side), never the stream.
    assert peak < 16 * 1024 * 1024, peak  # ~8 MB measured, for 16 MB and 96 MB alike
