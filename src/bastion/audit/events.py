"""What callers hand to the audit log, what they get back, and the checks an event must pass."""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from bastion.audit.canonical import SYSTEM_CHAIN, canonical_json
from bastion.audit.errors import AuditDetailsTooLarge, InvalidAuditEvent, SecretInAuditDetails
from bastion.kernel.redact import is_secret_key

ACTION_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# Chain ids become file names under the checkpoint directory: keep them path-safe.
CHAIN_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,35}")
MAX_ACTION_CHARS: Final = 128
MAX_TARGET_CHARS: Final = 256
MAX_REQUEST_ID_CHARS: Final = 128
# The User-Agent is client-controlled: an over-long one is cut, never a reason to fail the action.
MAX_USER_AGENT_CHARS: Final = 512
MAX_DETAILS_DEPTH: Final = 8
# Integers a JavaScript or Go float64 JSON parser reads exactly, so every verifier agrees.
MAX_SAFE_INTEGER: Final = 2**53 - 1
# Beyond kernel.redact's fragments: names that are keys by convention. ``key_id`` and
# ``key_version`` describe a key without revealing it and stay allowed.
_SECRET_KEY_NAMES: Final = re.compile(
    r"(^|[_\-.])(key|private_?key|api_?key|credentials?|passphrase)$"
)
_ALLOWED_KEY_NAMES: Final = frozenset({"public_key"})

JsonValue: TypeAlias = str | int | bool | Sequence["JsonValue"] | Mapping[str, "JsonValue"] | None


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    ERROR = "error"


class AuditAction(enum.StrEnum):
    """Actions Bastion records so far; any dotted lowercase name is accepted by ``append``."""

    SYSTEM_INITIALISED = "system.initialised"
    SCHEMA_MIGRATED = "schema.migrated"
    BOOTSTRAP_LINK_ISSUED = "bootstrap.link_issued"
    KEY_ROTATED = "key.rotated"
    TENANT_SHREDDED = "tenant.shredded"
    AUDIT_CHECKPOINT_CREATED = "audit.checkpoint_created"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One action to record. ``tenant_id=None`` records on the system chain.

    ``actor_user_id`` is the real user id; the log stores only its pseudonym. ``details`` must be
    small, JSON-shaped (no floats) and free of secrets, or ``append`` raises.
    """

    action: str
    tenant_id: str | None = None
    actor_user_id: str | None = None
    target: str | None = None
    outcome: Outcome = Outcome.SUCCESS
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntryRef:
    """Where an appended event landed: its chain, sequence number and hash."""

    chain: str
    seq: int
    hash: str


def chain_for(tenant_id: str | None) -> str:
    """The chain a tenant's events go to; raises InvalidAuditEvent for a malformed tenant id."""
    if tenant_id is None:
        return SYSTEM_CHAIN
    if tenant_id == SYSTEM_CHAIN or not CHAIN_ID_PATTERN.fullmatch(tenant_id):
        raise InvalidAuditEvent("tenant id is not a valid chain id")
    return tenant_id


def is_secret_detail_key(name: str) -> bool:
    """True for a details key that names a secret (kernel.redact's list plus key-like names)."""
    lowered = name.lower()
    if lowered in _ALLOWED_KEY_NAMES:
        return False
    return is_secret_key(lowered) or _SECRET_KEY_NAMES.search(lowered) is not None


def _bounded_text(value: str | None, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if len(value) > limit:
        raise InvalidAuditEvent(f"{what} is longer than {limit} characters")
    _refuse_unencodable(value, what)
    return value


def _refuse_unencodable(value: str, what: str) -> None:
    # NUL cannot be stored in PostgreSQL text; a lone surrogate has no UTF-8 form to hash.
    if "\x00" in value:
        raise InvalidAuditEvent(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAuditEvent(f"{what} is not valid Unicode") from None


def _check_json(value: object, path: str, depth: int) -> None:
    if depth > MAX_DETAILS_DEPTH:
        raise InvalidAuditEvent(f"details nest deeper than {MAX_DETAILS_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidAuditEvent(f"details {path}: integer outside ±(2**53 - 1)")
        return
    if isinstance(value, str):
        _refuse_unencodable(value, f"details {path}")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidAuditEvent(f"details {path}: keys must be strings")
            _refuse_unencodable(key, f"details {path}")
            if is_secret_detail_key(key):
                raise SecretInAuditDetails(f"details key {path}.{key} names a secret")
            _check_json(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
        return
    # Floats included: their text form differs between languages, so hashes would too.
    raise InvalidAuditEvent(f"details {path}: {type(value).__name__} is not allowed")


def canonical_details(details: Mapping[str, JsonValue], *, max_bytes: int) -> str:
    """Validated canonical JSON of ``details``.

    Raises SecretInAuditDetails for a secret-looking key at any depth, AuditDetailsTooLarge past
    ``max_bytes`` of UTF-8, InvalidAuditEvent for anything not plain JSON. Values never appear in
    the error, since a refused value may be the secret.
    """
    if not isinstance(details, Mapping):
        raise InvalidAuditEvent("details must be a JSON object")
    _check_json(details, "$", 0)
    text = canonical_json(dict(details))
    if len(text.encode("utf-8")) > max_bytes:
        raise AuditDetailsTooLarge(f"details exceed {max_bytes} bytes")
    return text


def checked_action(action: str) -> str:
    if len(action) > MAX_ACTION_CHARS or not ACTION_PATTERN.fullmatch(action):
        raise InvalidAuditEvent("action must be dotted lowercase, e.g. member.removed")
    return str(action)


def checked_source_ip(source_ip: str | None) -> str | None:
    """The address in canonical text (``2001:db8::1``); InvalidAuditEvent if it is not one."""
    if source_ip is None:
        return None
    normalised = _normalised_ip(source_ip)
    if normalised is None:
        raise InvalidAuditEvent("source_ip is not an IP address")
    return normalised


# Parsing an address costs more than the rest of an append's checks; clients repeat themselves.
@functools.lru_cache(maxsize=4096)
def _normalised_ip(source_ip: str) -> str | None:
    try:
        return str(ipaddress.ip_address(source_ip))
    except ValueError:
        return None


def clipped_user_agent(user_agent: str | None) -> str | None:
    if user_agent is None:
        return None
    clipped = user_agent[:MAX_USER_AGENT_CHARS]
    _refuse_unencodable(clipped, "user_agent")
    return clipped


def checked_target(target: str | None) -> str | None:
    return _bounded_text(target, "target", MAX_TARGET_CHARS)


def checked_request_id(request_id: str | None) -> str | None:
    return _bounded_text(request_id, "request_id", MAX_REQUEST_ID_CHARS)
