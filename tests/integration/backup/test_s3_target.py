"""The S3 target on a real S3 API (moto's server on loopback): round trip, atomicity, faults."""

import socket

import pytest

from bastion.backup import BackupCorrupted, S3Target, s3_client
from tests.support.backup import installation

BUCKET = "bastion-backups"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def client(s3_endpoint):
    client = s3_client(
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        timeout_seconds=10,
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def s3_container(make_settings, tmp_path, s3_endpoint, client):
    settings = make_settings(
        data_dir=tmp_path / "data",
        backup={
            "target": "s3",
            "s3_bucket": BUCKET,
            "s3_prefix": "prod/",
            "s3_endpoint_url": s3_endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "zstd_threads": 1,
        },
    )
    container = installation(settings)
    from tests.support.backup import create_app_table, insert_rows

    create_app_table(container.engine)
    # ~12 MB stored: two 8 MiB upload parts.
    insert_rows(container.engine, 1, 12_000, body_bytes=2_000)
    yield container
    container.engine.dispose()


def test_round_trip_through_s3(s3_container, tmp_path):
    service = s3_container.backup
    created = service.create()
    assert created.target == f"s3://{BUCKET}/prod/"
    assert created.backup.payload_bytes > 8 * 1024 * 1024  # more than one upload part
    assert [b.backup_id for b in service.listing().good] == [created.backup.backup_id]
    service.verify(created.backup.backup_id)
    report = service.restore(created.backup.backup_id, data_dir=tmp_path / "restored")
    assert report.tables["app_rows"] == 12_000


def test_an_unfinished_upload_is_not_a_backup(s3_container, client):
    service = s3_container.backup
    upload = service.target.write_payload("bk-20261122T090000Z-0badf00d")
    upload.write(b"x" * 1024)  # then the process dies: no complete, no manifest
    assert service.listing().good == ()
    assert [left.backup_id for left in service.target.leftovers()] == [
        "bk-20261122T090000Z-0badf00d"
    ]
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET)
    service.target.delete("bk-20261122T090000Z-0badf00d")
    assert service.target.leftovers() == []


def test_a_flipped_byte_in_s3_names_the_chunk(s3_container, client):
    service = s3_container.backup
    backup_id = service.create().backup.backup_id
    manifest = service.manifest(backup_id)
    key = f"prod/{backup_id}/payload.bin"
    payload = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    position = sum(chunk.size for chunk in manifest.chunks[:3]) + 11
    payload[position] ^= 0x80
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(payload))
    with pytest.raises(BackupCorrupted, match=f"chunk 3 of {len(manifest.chunks)}"):
        service.verify(backup_id)


def test_prune_deletes_from_s3(s3_container, client):
    service = s3_container.backup
    first = service.create().backup.backup_id
    service.create()
    service.target.delete(first)
    assert len(service.listing().good) == 1
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert not [key for key in keys if first in key]


def test_the_target_is_an_s3_target(s3_container):
    assert isinstance(s3_container.backup.target, S3Target)
