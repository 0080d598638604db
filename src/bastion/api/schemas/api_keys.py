"""Request and response shapes of the tenant API-key endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.access import Permission

KeyName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=100, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
# Unknown values are refused by the service with a problem naming them; this bounds the size.
PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MAX_PERMISSIONS = len(Permission)


class CreateApiKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName
    permissions: Annotated[list[PermissionName], Field(min_length=1, max_length=MAX_PERMISSIONS)]
    expires_at: datetime | None = None
    expires_in_days: Annotated[int | None, Field(ge=1, le=365)] = None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    tail: str
    permissions: list[Permission]
    created_by: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class CreatedApiKey(ApiKeyOut):
    # The whole secret, shown this once: only its SHA-256 is stored.
    key: str


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None
