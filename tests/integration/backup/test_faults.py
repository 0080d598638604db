"""Bad input and faults: flipped bytes, truncation, tampered manifests, the wrong master key."""

import json
import os

import pytest

from bastion.backup import (
    BackupCorrupted,
    BackupKeyMismatch,
    BackupNotFound,
    ManifestSignatureInvalid,
)
from bastion.bootstrap import build
from bastion.crypto import LocalKeyProvider, create_key_file
from tests.support.backup import flip_byte


def _files(settings, backup_id):
    directory = settings.backup_dir / backup_id
    return directory / "payload.bin", directory / "manifest.json"


def test_a_flipped_byte_in_any_chunk_is_refused_naming_the_chunk(settings, service, tmp_path):
    backup = service.create().backup
    manifest = service.manifest(backup.backup_id)
    payload, _ = _files(settings, backup.backup_id)
    assert len(manifest.chunks) >= 1
    offset = 0
    for index, chunk in enumerate(manifest.chunks):
        position = offset + chunk.size // 2
        flip_byte(payload, position)
        with pytest.raises(BackupCorrupted, match=f"chunk {index} of {len(manifest.chunks)}"):
            service.verify(backup.backup_id)
        target = tmp_path / f"restored-{index}"
        with pytest.raises(BackupCorrupted, match=f"chunk {index} of"):
            service.restore(backup.backup_id, data_dir=target)
        # Nothing restored, nothing half-written left behind.
        assert list(target.iterdir()) == []
        flip_byte(payload, position)
        offset += chunk.size
    service.verify(backup.backup_id)


def test_a_large_backup_names_the_chunk_that_was_damaged(container, service):
    from tests.support.backup import insert_rows

    insert_rows(container.engine, 10_000, 15_000, body_bytes=400)
    backup = service.create().backup
    manifest = service.manifest(backup.backup_id)
    assert len(manifest.chunks) >= 3
    payload, _ = _files(container.settings, backup.backup_id)
    position = sum(chunk.size for chunk in manifest.chunks[:2]) + 7
    flip_byte(payload, position)
    with pytest.raises(BackupCorrupted, match=f"chunk 2 of {len(manifest.chunks)}"):
        service.verify(backup.backup_id)


def test_a_truncated_backup_is_refused(settings, service, tmp_path):
    backup_id = service.create().backup.backup_id
    payload, _ = _files(settings, backup_id)
    size = payload.stat().st_size
    os.truncate(payload, size - 100)
    with pytest.raises(BackupCorrupted, match="truncated"):
        service.verify(backup_id)
    with pytest.raises(BackupCorrupted, match="truncated"):
        service.restore(backup_id, data_dir=tmp_path / "restored")
    payload.unlink()
    with pytest.raises(BackupCorrupted, match=r"chunk 0 of .* truncated"):
        service.verify(backup_id)


def test_a_tampered_manifest_fails_its_signature_and_is_not_listed(settings, service):
    good = service.create().backup.backup_id
    bad = service.create().backup.backup_id
    _, manifest_file = _files(settings, bad)
    document = json.loads(manifest_file.read_text())
    document["plaintext"]["bytes"] += 1
    manifest_file.write_text(json.dumps(document))
    with pytest.raises(ManifestSignatureInvalid, match="does not verify"):
        service.verify(bad)
    listing = service.listing()
    assert [b.backup_id for b in listing.good] == [good]
    assert bad in listing.bad


def test_a_flipped_byte_in_the_manifest_is_refused(settings, service):
    backup_id = service.create().backup.backup_id
    _, manifest_file = _files(settings, backup_id)
    text = manifest_file.read_text()
    position = text.index('"sha256": "') + len('"sha256": "')
    swapped = "1" if text[position] != "1" else "2"
    manifest_file.write_text(text[:position] + swapped + text[position + 1 :])
    with pytest.raises(ManifestSignatureInvalid):
        service.verify(backup_id)


def test_the_wrong_master_key_is_a_clear_error(settings, container, tmp_path):
    backup_id = container.backup.create().backup.backup_id
    # A master-key rotation: the keyring moves to the new key, old backups keep the old one.
    new_key = tmp_path / "new-master.key"
    create_key_file(new_key)
    report = container.keyring.rotate_kek(LocalKeyProvider(key_file=new_key))
    rotated = build(
        settings.model_copy(
            update={"crypto": settings.crypto.model_copy(update={"key_file": new_key})}
        )
    )
    try:
        with pytest.raises(BackupKeyMismatch, match=report.old_key_id) as raised:
            rotated.backup.verify(backup_id)
        assert report.new_key_id in raised.value.detail
        with pytest.raises(BackupKeyMismatch):
            rotated.backup.restore(backup_id, data_dir=tmp_path / "restored")
        # A backup taken after the rotation is readable again.
        rotated.backup.verify(rotated.backup.create().backup.backup_id)
    finally:
        rotated.engine.dispose()


@pytest.mark.parametrize("backup_id", ["../../etc", "bk-x", "bk-20261122T090000Z-00000000"])
def test_unknown_or_malformed_ids_are_not_found(service, backup_id):
    with pytest.raises(BackupNotFound):
        service.verify(backup_id)


def test_after_losing_the_database_a_restore_trusts_the_backups_own_keyring(
    make_settings, tmp_path
):
    from bastion.backup import InstallationUnavailable
    from bastion.crypto import Keyring
    from bastion.db import UnitOfWork, make_engine
    from tests.integration.backup.conftest import TENANT
    from tests.support.backup import installation

    settings = make_settings(
        data_dir=tmp_path / "lost", backup={"directory": tmp_path / "offsite", "zstd_threads": 1}
    )
    original = installation(settings)
    original.keyring.provision_tenant(TENANT)
    sealed = original.keyring.seal(TENANT, purpose="records", record_id="r", plaintext=b"data")
    backup_id = original.backup.create().backup.backup_id
    original.engine.dispose()
    (settings.data_dir / "bastion.db").unlink()  # the disaster

    survivor = build(settings)
    try:
        with pytest.raises(InstallationUnavailable, match="--trust-backup-keyring"):
            survivor.backup.restore(backup_id, data_dir=tmp_path / "new")
        report = survivor.backup.restore(
            backup_id, data_dir=tmp_path / "new", trust_backup_keyring=True
        )
    finally:
        survivor.engine.dispose()
    assert report.erasures_replayed == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'bastion.db'}")
    try:
        restored = Keyring(
            uow=UnitOfWork(engine), provider=original.keyring.provider, clock=original.clock
        )
        assert restored.open(TENANT, purpose="records", record_id="r", sealed=sealed) == b"data"
    finally:
        engine.dispose()


def test_a_trusted_restore_still_refuses_a_tampered_manifest(settings, service, tmp_path):
    backup_id = service.create().backup.backup_id
    _, manifest_file = _files(settings, backup_id)
    document = json.loads(manifest_file.read_text())
    document["database"]["schema_revision"] = "0001"
    manifest_file.write_text(json.dumps(document))
    with pytest.raises(ManifestSignatureInvalid):
        service.restore(backup_id, data_dir=tmp_path / "new", trust_backup_keyring=True)
    assert not (tmp_path / "new" / "bastion.db").exists()
