"""What an API key may be: its format, its lifetime, the permissions it may carry, and who may
see and revoke it. Pure rules over values; ``api_keys`` applies them to rows."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Final

from bastion.access.api_key_errors import ApiKeyExpiryInvalid, ApiKeyPermissionInvalid
from bastion.access.permissions import Permission, Role
from bastion.access.types import TenantContext

KEY_PREFIX: Final = "bst_"
# bst_ + 43 characters of unpadded URL-safe base64 (32 bytes). Session tokens are 43 characters,
# so the length alone tells a key from a session token that happens to start with "bst_".
KEY_CHARS: Final = len(KEY_PREFIX) + 43
TAIL_CHARS: Final = 4
DEFAULT_LIFETIME: Final = timedelta(days=90)
MAX_LIFETIME: Final = timedelta(days=365)
# A durable write per request would cap throughput at the disk's fsync rate (PERF-NOTES).
LAST_USED_INTERVAL: Final = timedelta(minutes=1)
MAX_LIVE_KEYS_PER_MEMBER: Final = 50
MAX_PAGE_SIZE: Final = 200
# Never on a key: letting an operator into the tenant's data is a person's decision, taken in a
# signed-in session, not something a script's long-lived credential can do.
NOT_FOR_KEYS: Final = frozenset({Permission.BREAK_GLASS_APPROVE})
# Every permission a key may carry, by its value: unknown or excluded ones grant nothing.
KEY_PERMISSIONS: Final = {p.value: p for p in Permission if p not in NOT_FOR_KEYS}


def checked_permissions(
    context: TenantContext, requested: Collection[str]
) -> frozenset[Permission]:
    """The requested permissions, each known and granted to the caller in this tenant now;
    ApiKeyPermissionInvalid naming the first that is not (or for none at all)."""
    known = {p.value: p for p in Permission}
    granted: set[Permission] = set()
    for value in requested:
        permission = known.get(value)
        if permission is None:
            raise ApiKeyPermissionInvalid(
                f"Unknown permission: {value[:64]!r}.", permission=value[:64]
            )
        if permission in NOT_FOR_KEYS:
            raise ApiKeyPermissionInvalid(
                f"{permission.value} cannot be given to an API key: it needs a person in a "
                "signed-in session.",
                permission=permission.value,
            )
        if not context.has_permission(permission):
            raise ApiKeyPermissionInvalid(
                f"Your role in this tenant does not grant {permission.value}, so a key of "
                "yours cannot have it.",
                permission=permission.value,
            )
        granted.add(permission)
    if not granted:
        raise ApiKeyPermissionInvalid("An API key needs at least one permission.")
    return frozenset(granted)


def expiry(now: datetime, *, expires_at: datetime | None, expires_in_days: int | None) -> datetime:
    """The key's expiry: ``expires_in_days`` (1-365) or ``expires_at`` (aware, in the future, at
    most 365 days ahead), not both; 90 days by default. ApiKeyExpiryInvalid otherwise."""
    if expires_at is not None and expires_in_days is not None:
        raise ApiKeyExpiryInvalid
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_LIFETIME.days:
            raise ApiKeyExpiryInvalid
        return now + timedelta(days=expires_in_days)
    if expires_at is None:
        return now + DEFAULT_LIFETIME
    if expires_at.tzinfo is None:
        raise ApiKeyExpiryInvalid("expires_at needs a time zone (e.g. a trailing Z).")
    if not now < expires_at <= now + MAX_LIFETIME:
        raise ApiKeyExpiryInvalid
    return expires_at


def sees_all_keys(context: TenantContext) -> bool:
    """Owners and admins (MEMBER_REMOVE) see every member's keys; others their own."""
    return context.has_permission(Permission.MEMBER_REMOVE)


def may_revoke(context: TenantContext, *, creator_id: str, creator_role: str | None) -> bool:
    """One's own keys always; another member's with MEMBER_REMOVE; an owner's (or one whose
    creator left, which is already revoked) only with OWNER_MANAGE too."""
    if creator_id == context.user_id:
        return True
    if not sees_all_keys(context):
        return False
    is_owner_key = creator_role is None or creator_role == Role.OWNER.value
    return not is_owner_key or context.has_permission(Permission.OWNER_MANAGE)
