"""The S3-compatible target (AWS, MinIO, Ceph, R2...), through boto3.

The payload is a multipart upload: S3 shows no object until the upload is completed, so an
interrupted run leaves only an unfinished upload, which ``leftovers`` reports and ``delete`` aborts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bastion.backup.errors import BackupNotFound, BackupTargetUnavailable
from bastion.backup.manifest import BACKUP_ID_PATTERN, MAX_MANIFEST_BYTES
from bastion.backup.stream import Readable
from bastion.backup.targets import (
    MANIFEST,
    PAYLOAD,
    EmptyPayload,
    Leftover,
    PayloadUpload,
    checked_id,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# S3 parts must be >= 5 MiB (except the last) and at most 10,000 per object: parts start at
# 8 MiB and double every 1,000 parts, so the size of a backup is practically unbounded.
S3_PART_BYTES: Final = 8 * 1024 * 1024
S3_PARTS_PER_DOUBLING: Final = 1000


class _S3Upload:
    """A multipart upload: S3 shows no object until ``complete_multipart_upload``."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def write(self, data: bytes) -> object:
        self._buffer += data
        if len(self._buffer) >= S3_PART_BYTES << (len(self._parts) // S3_PARTS_PER_DOUBLING):
            self._send()
        return len(data)

    def _send(self) -> None:
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer.clear()

    def commit(self) -> None:
        if self._buffer or not self._parts:
            self._send()
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
        )

    def abort(self) -> None:
        self._client.abort_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
        )


class _S3Body:
    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._body.read(size if size >= 0 else None)
        return data


class S3Target:
    """Backups in an S3-compatible bucket under ``prefix``."""

    def __init__(self, client: S3Client, *, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    @property
    def description(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}"

    def _key(self, backup_id: str, name: str) -> str:
        return f"{self._prefix}{checked_id(backup_id)}/{name}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - optional

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise BackupNotFound(f"not found in {self.description}") from None
            raise BackupTargetUnavailable(f"{self.description}: {code or exc}") from None
        except BotoCoreError as exc:
            raise BackupTargetUnavailable(f"{self.description}: {exc}") from None

    def write_payload(self, backup_id: str) -> PayloadUpload:
        with self._errors():
            return _S3Upload(self._client, self._bucket, self._key(backup_id, PAYLOAD))

    def publish_manifest(self, backup_id: str, manifest: bytes) -> None:
        with self._errors():
            self._client.put_object(
                Bucket=self._bucket, Key=self._key(backup_id, MANIFEST), Body=manifest
            )

    def read_manifest(self, backup_id: str) -> bytes:
        key = self._key(backup_id, MANIFEST)
        try:
            with self._errors():
                body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
                data: bytes = body.read(MAX_MANIFEST_BYTES + 1)
                return data
        except BackupNotFound:
            raise BackupNotFound(f"no complete backup {backup_id} in {self.description}") from None

    @contextmanager
    def read_payload(self, backup_id: str) -> Iterator[Readable]:
        key = self._key(backup_id, PAYLOAD)
        try:
            with self._errors():
                body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
        except BackupNotFound:
            yield EmptyPayload()
            return
        try:
            with self._errors():
                yield _S3Body(body)
        finally:
            body.close()

    def _objects(self) -> Iterator[tuple[str, str, datetime]]:
        with self._errors():
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"][len(self._prefix) :]
                    backup_id, _, name = rest.partition("/")
                    if BACKUP_ID_PATTERN.fullmatch(backup_id):
                        yield backup_id, name, item["LastModified"]

    def complete_ids(self) -> list[str]:
        return sorted({bid for bid, name, _ in self._objects() if name == MANIFEST})

    def leftovers(self) -> list[Leftover]:
        complete = set(self.complete_ids())
        newest: dict[str, datetime] = {}
        for backup_id, _, modified in self._objects():
            if backup_id not in complete:
                newest[backup_id] = max(modified, newest.get(backup_id, modified))
        with self._errors():
            uploads = self._client.list_multipart_uploads(Bucket=self._bucket, Prefix=self._prefix)
            for upload in uploads.get("Uploads", []):
                backup_id = upload["Key"][len(self._prefix) :].partition("/")[0]
                if BACKUP_ID_PATTERN.fullmatch(backup_id) and backup_id not in complete:
                    started = upload["Initiated"]
                    newest[backup_id] = max(started, newest.get(backup_id, started))
        return [Leftover(bid, when) for bid, when in sorted(newest.items())]

    def delete(self, backup_id: str) -> None:
        with self._errors():
            self._client.delete_object(Bucket=self._bucket, Key=self._key(backup_id, MANIFEST))
            self._client.delete_object(Bucket=self._bucket, Key=self._key(backup_id, PAYLOAD))
            prefix = f"{self._prefix}{backup_id}/"
            uploads = self._client.list_multipart_uploads(Bucket=self._bucket, Prefix=prefix)
            for upload in uploads.get("Uploads", []):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )


def s3_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    timeout_seconds: float,
) -> S3Client:
    """A boto3 S3 client with finite timeouts and bounded retries."""
    import boto3  # noqa: PLC0415 - only S3 installations pay for importing boto3
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"max_attempts": 5, "mode": "standard"},
        # Integrity in transfer (P21): S3 checks a CRC of every upload when asked to.
        request_checksum_calculation="when_supported",
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )
    return client
