"""Request and response shapes of the operator key endpoints (no key material, ever)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from bastion.crypto import KeyVersion
from bastion.crypto.status import KeyringStatus, TenantKeyStatus

# Tenant ids are what the keyring is keyed by (the 36-character tenant_id columns).
TenantIdField = Annotated[
    str, StringConstraints(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
]


class TenantKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: TenantIdField


class KeyVersionOut(BaseModel):
    version: int
    status: str
    encryptions_reserved: int
    created_at: datetime
    superseded_at: datetime | None
    retired_at: datetime | None

    @classmethod
    def of(cls, version: KeyVersion) -> KeyVersionOut:
        return cls(
            version=version.version,
            status=version.status,
            encryptions_reserved=version.encryptions_reserved,
            created_at=version.created_at,
            superseded_at=version.superseded_at,
            retired_at=version.retired_at,
        )


class SystemKeyOut(KeyVersionOut):
    name: str


class ReencryptionOut(BaseModel):
    target: str
    to_version: int
    rows_done: int
    finished: bool


class KeyringStatusOut(BaseModel):
    master_key_id: str
    master_key_rotation_unfinished: bool
    keys_under_other_master_keys: int
    system_keys: list[SystemKeyOut]
    tenants_with_keys: int
    superseded_tenant_versions: int
    unfinished_reencryptions: int
    most_encryptions_reserved: int
    encryption_limit: int
    # Superseded system data-key versions (still decrypting): re-encrypt, then retire them.
    pending_system_versions: list[int]
    system_reencryption: list[ReencryptionOut]

    @classmethod
    def of(cls, status: KeyringStatus) -> KeyringStatusOut:
        return cls(
            master_key_id=status.master_key_id,
            master_key_rotation_unfinished=status.keys_under_other_master_keys > 0,
            keys_under_other_master_keys=status.keys_under_other_master_keys,
            system_keys=[
                SystemKeyOut(
                    name=key.owner.removeprefix("system:"), **KeyVersionOut.of(key).model_dump()
                )
                for key in status.system_keys
            ],
            tenants_with_keys=status.tenants_with_keys,
            superseded_tenant_versions=status.superseded_tenant_versions,
            unfinished_reencryptions=status.unfinished_reencryptions,
            most_encryptions_reserved=status.most_encryptions_reserved,
            encryption_limit=status.encryption_limit,
            pending_system_versions=list(status.pending_system_versions),
            system_reencryption=[
                ReencryptionOut(
                    target=job.target,
                    to_version=job.to_version,
                    rows_done=job.rows_done,
                    finished=job.finished,
                )
                for job in status.system_reencryption
            ],
        )


class TenantKeysOut(BaseModel):
    tenant: str
    active_version: int | None
    # Superseded versions: they still decrypt; re-encrypt, then retire them.
    pending_versions: list[int]
    versions: list[KeyVersionOut]
    reencryption: list[ReencryptionOut]

    @classmethod
    def of(cls, status: TenantKeyStatus) -> TenantKeysOut:
        return cls(
            tenant=status.tenant,
            active_version=status.active_version,
            pending_versions=list(status.pending_versions),
            versions=[KeyVersionOut.of(version) for version in status.versions],
            reencryption=[
                ReencryptionOut(
                    target=job.target,
                    to_version=job.to_version,
                    rows_done=job.rows_done,
                    finished=job.finished,
                )
                for job in status.reencryption
            ],
        )


class TenantKeysList(BaseModel):
    items: list[TenantKeysOut]
    next_cursor: str | None


class RotatedOut(BaseModel):
    tenant: str
    version: KeyVersionOut


class ReencryptedTarget(BaseModel):
    target: str
    to_version: int
    rows_scanned: int
    rows_reencrypted: int
    finished: bool


class ReencryptedOut(BaseModel):
    tenant: str
    targets: list[ReencryptedTarget]


class SystemRotatedOut(BaseModel):
    version: KeyVersionOut


class SystemReencryptedOut(BaseModel):
    targets: list[ReencryptedTarget]
