"""Typed results of the client: plain frozen dataclasses built from the server's JSON.

Unknown fields are ignored, so a newer server does not break an older client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Json = Mapping[str, Any]


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass ``next_cursor`` back to get the next (None: this is the last)."""

    items: Sequence[T]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class SessionToken:
    token: str = field(repr=False)
    csrf_token: str = field(repr=False)
    expires_at: datetime
    idle_expires_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> SessionToken:
        return cls(
            token=data["token"],
            csrf_token=data["csrf_token"],
            expires_at=_time(data["expires_at"]),
            idle_expires_at=_time(data["idle_expires_at"]),
        )


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    name: str | None
    is_operator: bool
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> Account:
        return cls(
            id=data["id"],
            email=data["email"],
            name=data.get("name"),
            is_operator=bool(data["is_operator"]),
            email_verified=bool(data["email_verified"]),
            mfa_enabled=bool(data["mfa_enabled"]),
            created_at=_time(data["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def from_json(cls, data: Json) -> SessionInfo:
        return cls(
            id=data["id"],
            created_at=_time(data["created_at"]),
            last_seen_at=_time(data["last_seen_at"]),
            expires_at=_time(data["expires_at"]),
            ip=data.get("ip"),
            user_agent=data.get("user_agent"),
            current=bool(data["current"]),
        )


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """Shown once by the server: keep ``secret`` in the authenticator, not in logs."""

    secret: str = field(repr=False)
    otpauth_uri: str = field(repr=False)
    qr_svg: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Json) -> TotpEnrolment:
        return cls(secret=data["secret"], otpauth_uri=data["otpauth_uri"], qr_svg=data["qr_svg"])


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    slug: str
    name: str
    role: str | None = None
    """The caller's role, where the server says it (listing and reading a tenant)."""

    @classmethod
    def from_json(cls, data: Json) -> Tenant:
        return cls(id=data["id"], slug=data["slug"], name=data["name"], role=data.get("role"))


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    role: str
    joined_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> Member:
        return cls(user_id=data["user_id"], role=data["role"], joined_at=_time(data["joined_at"]))


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    email: str
    role: str
    expires_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> Invitation:
        return cls(
            id=data["id"],
            email=data["email"],
            role=data["role"],
            expires_at=_time(data["expires_at"]),
        )


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    time: str
    actor: str | None
    action: str
    target: str | None
    outcome: str
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: Mapping[str, Any]
    hash: str

    @classmethod
    def from_json(cls, data: Json) -> AuditEvent:
        return cls(
            seq=int(data["seq"]),
            time=str(data["time"]),
            actor=data.get("actor"),
            action=data["action"],
            target=data.get("target"),
            outcome=data["outcome"],
            source_ip=data.get("source_ip"),
            user_agent=data.get("user_agent"),
            request_id=data.get("request_id"),
            details=dict(data.get("details") or {}),
            hash=data["hash"],
        )


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as listed: never its secret; ``prefix`` and ``tail`` identify it."""

    id: str
    name: str
    prefix: str
    tail: str
    permissions: Sequence[str]
    created_by: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_json(cls, data: Json) -> ApiKey:
        return cls(
            id=data["id"],
            name=data["name"],
            prefix=data["prefix"],
            tail=data["tail"],
            permissions=tuple(data["permissions"]),
            created_by=data["created_by"],
            created_at=_time(data["created_at"]),
            expires_at=_time(data["expires_at"]),
            last_used_at=_optional_time(data.get("last_used_at")),
        )


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A new key with its secret, which the server shows this once and never again."""

    api_key: ApiKey
    secret: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Json) -> CreatedApiKey:
        return cls(api_key=ApiKey.from_json(data), secret=data["key"])


@dataclass(frozen=True, slots=True)
class Collection:
    name: str
    schema: Mapping[str, Any] | None
    indexed: Sequence[str]
    audit_reads: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> Collection:
        return cls(
            name=data["name"],
            schema=data.get("schema"),
            indexed=tuple(data.get("indexed") or ()),
            audit_reads=bool(data["audit_reads"]),
            created_at=_time(data["created_at"]),
            updated_at=_time(data["updated_at"]),
        )


@dataclass(frozen=True, slots=True)
class Record:
    """A stored JSON document; pass ``etag`` as ``if_match`` to write only over this version."""

    id: str
    data: Mapping[str, Any]
    etag: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> Record:
        return cls(
            id=data["id"],
            data=data["data"],
            etag=data["etag"],
            created_at=_time(data["created_at"]),
            updated_at=_time(data["updated_at"]),
        )
