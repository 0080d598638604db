"""Tenant-bound API keys: ``bst_`` plus 32 random bytes, shown once, stored as a SHA-256 digest.

A key acts as the member who created it, in the one tenant it is bound to, with the permissions
it was given, and never beyond that member's *current* role: at every use the effective
permissions are the key's AND the creator's role as read from the database on that request
(``TenantContext.has_permission``). So lowering the creator's role shrinks the key on its next
use, removing the creator from the tenant revokes the key (``SqlAccess.remove_member``), and a
password reset, an account disable or "revoke all" revokes every key of the user in the same
transaction (``revoke_user_credentials``, called by identity).

Why SHA-256 and no slow hash: the secret is 256 bits from ``secrets``; nobody can guess it, so
stretching (argon2) would only make every request slower. A database leak yields digests that
no one can turn back into keys.

Expired, revoked and unknown keys all answer the same 401. Refusals of a key that exists
(expired, revoked, another tenant, a route keys may not call) are audited on the key's tenant
chain; an unknown key is only logged, since it names no tenant and an audit row per garbage
token would let anyone grow the append-only log. Every create and revoke is audited; the secret
never reaches an audit entry or a log line.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NoReturn

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session

from bastion.access import api_key_repository as repository
from bastion.access import recording
from bastion.access.api_key_errors import (
    ApiKeyCannotCreateKeys,
    ApiKeyNotAllowed,
    ApiKeyNotFound,
    ApiKeyOtherTenant,
    ApiKeyRefused,
    TooManyApiKeys,
)
from bastion.access.api_key_policy import (
    KEY_CHARS,
    KEY_PERMISSIONS,
    KEY_PREFIX,
    LAST_USED_INTERVAL,
    MAX_LIVE_KEYS_PER_MEMBER,
    MAX_PAGE_SIZE,
    TAIL_CHARS,
    checked_permissions,
    may_revoke,
    sees_all_keys,
)
from bastion.access.api_key_policy import expiry as expiry_of
from bastion.access.models import ApiKeyRow
from bastion.access.permissions import Permission
from bastion.access.repository import member
from bastion.access.types import AccessAction, TenantContext, TenantId
from bastion.audit import AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.db import bind_tenant, bind_token_digest, bind_user
from bastion.db.session import defer_until_commit
from bastion.identity import (
    ClientInfo,
    NotAuthenticated,
    Principal,
    SessionId,
    UserId,
    account_is_active,
)
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id, new_token, token_digest

log = structlog.get_logger("bastion.access")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as its tenant sees it in a list: never the secret, only its last characters."""

    id: str
    tenant_id: TenantId
    name: str
    tail: str
    permissions: tuple[Permission, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None

    @property
    def prefix(self) -> str:
        return KEY_PREFIX


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new key: ``secret`` is shown to its creator once and stored only as a digest."""

    key: ApiKey
    secret: str = field(repr=False)


class SqlApiKeys:
    """Create, list, revoke and authenticate API keys over the ``api_keys`` table. Runs in the
    caller's transaction and never commits."""

    def __init__(self, *, audit_log: AuditLog, clock: Clock) -> None:
        self._audit = audit_log
        self._clock = clock

    # -- management (a member, through a tenant route) -------------------------------------

    def create(
        self,
        session: Session,
        context: TenantContext,
        *,
        name: str,
        permissions: Collection[str],
        expires_at: datetime | None,
        expires_in_days: int | None,
        client: ClientInfo,
    ) -> IssuedApiKey:
        """A new key of the context's member in its tenant. The caller (the edge) has checked a
        recent second factor (step-up) first.

        Raises ApiKeyCannotCreateKeys (the context is itself a key), ApiKeyPermissionInvalid
        naming the first unknown permission or the first one the member's role lacks,
        ApiKeyExpiryInvalid, TooManyApiKeys.
        """
        if context.api_key_id is not None:
            raise ApiKeyCannotCreateKeys
        granted = checked_permissions(context, permissions)
        now = self._clock.now()
        expiry = expiry_of(now, expires_at=expires_at, expires_in_days=expires_in_days)
        live = repository.live_count(session, context.tenant_id, context.user_id, now)
        if live >= MAX_LIVE_KEYS_PER_MEMBER:
            raise TooManyApiKeys(limit=MAX_LIVE_KEYS_PER_MEMBER)
        secret = KEY_PREFIX + new_token()
        row = ApiKeyRow(
            id=new_id(),
            tenant_id=context.tenant_id,
            user_id=context.user_id,
            name=name,
            token_hash=token_digest(secret),
            tail=secret[-TAIL_CHARS:],
            permissions=sorted(p.value for p in granted),
            created_at=now,
            expires_at=expiry,
            last_used_at=None,
            revoked_at=None,
        )
        session.add(row)
        session.flush()
        self._record(
            session,
            context.tenant_id,
            AccessAction.API_KEY_CREATED,
            actor=context.user_id,
            target=row.id,
            client=client,
            details={"permissions": list(row.permissions), "expires_at": expiry.isoformat()},
        )
        return IssuedApiKey(key=_key(row), secret=secret)

    def list_keys(
        self, session: Session, context: TenantContext, *, after: str | None, limit: int
    ) -> list[ApiKey]:
        """A page of the tenant's unrevoked keys by id: the caller's own, or everyone's for a
        member who may remove members (owners, admins)."""
        size = max(1, min(limit, MAX_PAGE_SIZE))
        user_id = None if sees_all_keys(context) else context.user_id
        rows = repository.listed(
            session, context.tenant_id, user_id=user_id, after_id=after, limit=size
        )
        return [_key(row) for row in rows]

    def revoke(
        self, session: Session, context: TenantContext, *, key_id: str, client: ClientInfo
    ) -> None:
        """Revoke a key of the tenant: it fails on its very next request, in every process.

        One's own keys always; another member's with MEMBER_REMOVE, and an owner's only with
        OWNER_MANAGE too (an admin cannot cut an owner's automation). ApiKeyNotFound for a key
        that is unknown, already revoked, in another tenant, or not the caller's to revoke.
        """
        row = repository.in_tenant(session, context.tenant_id, key_id)
        if row is None or row.revoked_at is not None:
            raise ApiKeyNotFound
        creator = member(session, context.tenant_id, row.user_id)
        role = creator.role if creator is not None else None
        if not may_revoke(context, creator_id=row.user_id, creator_role=role):
            raise ApiKeyNotFound
        repository.revoke(session, row, now=self._clock.now(), by=context.user_id, reason="revoked")
        self._record(
            session,
            context.tenant_id,
            AccessAction.API_KEY_REVOKED,
            actor=context.user_id,
            target=row.id,
            client=client,
            details={"reason": "revoked", "created_by_caller": row.user_id == context.user_id},
        )

    # -- use (the edge, on every request that presents a key) ------------------------------

    @staticmethod
    def is_api_key(token: str) -> bool:
        """True when a bearer token is shaped like an API key (prefix and length)."""
        return len(token) == KEY_CHARS and token.startswith(KEY_PREFIX)

    def authenticate(self, session: Session, *, token: str, client: ClientInfo) -> Principal:
        """The principal of an API key, checked against the store on every request.

        NotAuthenticated for an unknown key; ApiKeyRefused (the same 401, audited) for an
        expired or revoked one. Records the last use at most once a minute.
        """
        if not self.is_api_key(token):
            raise NotAuthenticated
        digest = token_digest(token)
        # Row-level security (PostgreSQL): holding the secret entitles the caller to its row.
        bind_token_digest(session, digest)
        row = repository.by_token_hash(session, digest)
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            log.info("access.api_key_unknown", request_id=client.request_id)
            raise NotAuthenticated
        now = self._clock.now()
        if row.revoked_at is not None or as_utc(row.expires_at) <= now:
            reason = "revoked" if row.revoked_at is not None else "expired"
            self._refuse(session, row.tenant_id, row.id, row.user_id, client, reason=reason)
            raise ApiKeyRefused
        # Disabling an account revokes its keys in the same transaction; this read makes a key
        # of a disabled account useless even if some future path forgets to.
        if not account_is_active(session, row.user_id):
            reason = "account_disabled"
            self._refuse(session, row.tenant_id, row.id, row.user_id, client, reason=reason)
            raise ApiKeyRefused
        if row.last_used_at is None or now - as_utc(row.last_used_at) >= LAST_USED_INTERVAL:
            used = update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now)
            defer_until_commit(session, used)
        return Principal(
            user_id=UserId(row.user_id),
            session_id=SessionId(""),
            is_operator=False,  # a key never carries operator (staff) powers
            api_key_id=row.id,
            api_key_tenant_id=row.tenant_id,
            api_key_permissions=frozenset(row.permissions),
        )

    def narrow(
        self, session: Session, context: TenantContext, principal: Principal, *, client: ClientInfo
    ) -> TenantContext:
        """The creator's tenant context narrowed to the key: its tenant only (another one is
        ApiKeyOtherTenant, a 404 like any tenant one is not a member of, audited on the key's
        own chain), and its permissions AND the creator's current role."""
        if principal.api_key_id is None:
            return context
        if principal.api_key_tenant_id != context.tenant_id:
            self._refuse(
                session,
                principal.api_key_tenant_id,
                principal.api_key_id,
                principal.user_id,
                client,
                reason="other_tenant",
            )
            raise ApiKeyOtherTenant
        # A stored permission this code no longer knows (or no longer lets a key hold) grants
        # nothing: fail closed.
        stored = principal.api_key_permissions
        granted = frozenset(KEY_PERMISSIONS[p] for p in stored if p in KEY_PERMISSIONS)
        return replace(context, api_key_id=principal.api_key_id, api_key_permissions=granted)

    def refuse_route(
        self, session: Session, principal: Principal, *, client: ClientInfo
    ) -> NoReturn:
        """Refuse a key on a route that is not a tenant route (account, MFA, sessions, tenant
        creation, operator routes): ApiKeyNotAllowed (403), audited on the key's chain."""
        self._refuse(
            session,
            principal.api_key_tenant_id,
            principal.api_key_id,
            principal.user_id,
            client,
            reason="not_a_tenant_route",
        )
        raise ApiKeyNotAllowed

    # -- revocation hooks ------------------------------------------------------------------

    def revoke_user_credentials(
        self,
        session: Session,
        *,
        user_id: str,
        now: datetime,
        reason: str,
        actor_user_id: str | None,
        client: ClientInfo,
    ) -> int:
        """Revoke every key ``user_id`` created, in every tenant (identity calls this when it
        ends every session of the user); each revocation is audited on its tenant's chain.

        Walks the user's memberships, one tenant at a time, so that row-level security (which
        shows one tenant per binding) sees every key: a tenant the user has left holds no live
        key of theirs, since leaving revoked them.
        """
        bind_user(session, user_id)
        revoked = 0
        for tenant_id in repository.member_tenant_ids(session, user_id):
            bind_tenant(session, tenant_id)
            for row in repository.live_of_member(session, tenant_id, user_id):
                repository.revoke(session, row, now=now, by=actor_user_id, reason=reason)
                self._record(
                    session,
                    TenantId(tenant_id),
                    AccessAction.API_KEY_REVOKED,
                    actor=actor_user_id,
                    target=row.id,
                    client=client,
                    details={"reason": reason},
                )
                revoked += 1
        return revoked

    # -- helpers ---------------------------------------------------------------------------

    def _refuse(
        self,
        session: Session,
        tenant_id: str | None,
        key_id: str | None,
        user_id: str,
        client: ClientInfo,
        *,
        reason: str,
    ) -> None:
        if tenant_id is None:
            return
        # The refusal lands on the key's own chain, whatever tenant the request named.
        bind_tenant(session, tenant_id)
        self._record(
            session,
            TenantId(tenant_id),
            AccessAction.API_KEY_REFUSED,
            actor=user_id,
            target=key_id,
            client=client,
            outcome=Outcome.DENIED,
            details={"reason": reason},
        )

    def _record(
        self,
        session: Session,
        tenant_id: TenantId,
        action: AccessAction,
        *,
        actor: str | None,
        target: str | None,
        client: ClientInfo,
        outcome: Outcome = Outcome.SUCCESS,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        recording.record(
            self._audit,
            session,
            tenant_id,
            action,
            actor=actor,
            target=target,
            client=client,
            outcome=outcome,
            details=details,
        )


def _key(row: ApiKeyRow) -> ApiKey:
    known = {p.value: p for p in Permission}
    return ApiKey(
        id=row.id,
        tenant_id=TenantId(row.tenant_id),
        name=row.name,
        tail=row.tail,
        permissions=tuple(known[p] for p in row.permissions if p in known),
        created_by=row.user_id,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        last_used_at=as_utc(row.last_used_at) if row.last_used_at is not None else None,
    )
