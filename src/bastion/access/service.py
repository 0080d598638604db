"""The access service: tenants, memberships and the permission decision.

Tenant context always comes from the caller's membership as stored, read again on every request
(``resolve``): there is no cache, so removing a member or lowering a role takes effect on the
next request in every process. Another tenant, or one that does not exist, is ``TenantNotFound``
alike (404, no existence oracle). Every state change is appended to the tenant's audit chain in
the caller's transaction; the service never commits.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.access import api_key_repository, break_glass, recording, repository
from bastion.access.errors import (
    AlreadyMember,
    InvalidSlug,
    LastOwner,
    MemberNotFound,
    PermissionDenied,
    SlugTaken,
    TenantNotFound,
)
from bastion.access.models import MembershipRow
from bastion.access.permissions import Permission, Role, permissions_of
from bastion.access.policy import PolicyGate, RepeatedSignals, SecondFactorCheck
from bastion.access.roles import load_role
from bastion.access.types import (
    AccessAction,
    Member,
    Tenant,
    TenantContext,
    TenantId,
    TenantMembership,
)
from bastion.audit import AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.db import bind_tenant
from bastion.identity import ClientInfo
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id

SLUG_PATTERN: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])")
TENANT_ID_PATTERN: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
MAX_TENANT_REF_CHARS: Final = 63
MAX_PAGE_SIZE: Final = 200


class TenantKeys(Protocol):
    """The keyring's part in tenant creation (``crypto.Keyring`` satisfies it)."""

    def provision_tenant(self, tenant: str) -> object: ...


class Access(Protocol):
    """Tenants, memberships and permission decisions; see the module docstring."""

    def create_tenant(
        self, session: Session, *, user_id: str, name: str, slug: str, client: ClientInfo
    ) -> Tenant: ...
    def my_tenants(
        self, session: Session, *, user_id: str, after: str | None = None, limit: int = 50
    ) -> list[TenantMembership]: ...
    def resolve(
        self, session: Session, *, user_id: str, tenant_ref: str, operator: bool = False
    ) -> TenantContext: ...
    def authorize(
        self,
        session: Session,
        context: TenantContext,
        permission: Permission,
        *,
        client: ClientInfo,
        route: str | None = None,
    ) -> None: ...
    def list_members(
        self, session: Session, context: TenantContext, *, after: str | None, limit: int
    ) -> list[Member]: ...
    def add_member(
        self,
        session: Session,
        context: TenantContext,
        *,
        user_id: str,
        role: Role,
        client: ClientInfo,
    ) -> Member: ...
    def change_role(
        self,
        session: Session,
        context: TenantContext,
        *,
        user_id: str,
        role: Role,
        client: ClientInfo,
    ) -> Member: ...
    def remove_member(
        self, session: Session, context: TenantContext, *, user_id: str, client: ClientInfo
    ) -> None: ...
    def record_audit_export(
        self, session: Session, context: TenantContext, *, client: ClientInfo
    ) -> None: ...


def is_tenant_id(ref: str) -> bool:
    return TENANT_ID_PATTERN.fullmatch(ref) is not None


class SqlAccess:
    """``Access`` over the ``tenants`` and ``memberships`` tables."""

    def __init__(
        self,
        *,
        keys: TenantKeys,
        audit_log: AuditLog,
        clock: Clock,
        second_factors: SecondFactorCheck | None = None,
        signals: RepeatedSignals | None = None,
    ) -> None:
        self._keys = keys
        self._audit = audit_log
        self._clock = clock
        # Without ``second_factors`` a tenant that requires MFA refuses everyone (fail closed).
        # ``signals``: where allow-list refusals raise security events (none without it).
        self._gate = PolicyGate(audit_log=audit_log, second_factors=second_factors, signals=signals)

    def create_tenant(
        self, session: Session, *, user_id: str, name: str, slug: str, client: ClientInfo
    ) -> Tenant:
        """A new tenant with ``user_id`` as its owner and its data key provisioned.

        Raises InvalidSlug (422) or SlugTaken (409). The data key is provisioned first, in the
        keyring's own short transaction: if this transaction then fails, an unused key for an
        id nobody holds is all that remains, whereas the other order could commit a tenant that
        has no key. Callers on SQLite must not hold the write lock yet (see ``api.access``).
        """
        if not SLUG_PATTERN.fullmatch(slug) or is_tenant_id(slug):
            raise InvalidSlug
        if repository.tenant_by_slug(session, slug) is not None:
            raise SlugTaken
        tenant_id = new_id()
        self._keys.provision_tenant(tenant_id)
        bind_tenant(session, tenant_id)  # row-level security: the new tenant's rows are ours
        now = self._clock.now()
        try:
            with session.begin_nested():
                row = repository.add_tenant(
                    session, tenant_id=tenant_id, slug=slug, name=name, now=now
                )
        except IntegrityError:
            raise SlugTaken from None  # taken between the check and the insert
        repository.add_membership(session, tenant_id, user_id=user_id, role=Role.OWNER, now=now)
        tenant = _tenant(row)
        self._record(
            session,
            tenant.id,
            AccessAction.TENANT_CREATED,
            actor=user_id,
            target=tenant.id,
            client=client,
            details={"slug": slug, "owner": user_id},
        )
        return tenant

    def my_tenants(
        self, session: Session, *, user_id: str, after: str | None = None, limit: int = 50
    ) -> list[TenantMembership]:
        """A page of the tenants ``user_id`` belongs to, with the role, by slug after ``after``."""
        size = max(1, min(limit, MAX_PAGE_SIZE))
        rows = repository.memberships_of_user(session, user_id, after_slug=after, limit=size)
        return [
            TenantMembership(tenant=_tenant(tenant), role=Role(membership.role))
            for tenant, membership in rows
        ]

    def resolve(
        self, session: Session, *, user_id: str, tenant_ref: str, operator: bool = False
    ) -> TenantContext:
        """The tenant named by id or slug, through ``user_id``'s membership, read now.

        A member holding a custom role gets that role's permissions as stored now. With
        ``operator`` (the caller is an operator), a non-member with an active break-glass grant
        on the tenant gets a read-only context (see ``break_glass``). TenantNotFound when the
        tenant does not exist or the user is neither a member nor holds an active grant.
        """
        if not tenant_ref or len(tenant_ref) > MAX_TENANT_REF_CHARS:
            raise TenantNotFound
        if is_tenant_id(tenant_ref):
            found = repository.membership_for(session, user_id=user_id, tenant_id=tenant_ref)
        else:
            found = repository.membership_for(session, user_id=user_id, slug=tenant_ref)
        if found is None:
            if operator:
                return self._break_glass_context(session, user_id=user_id, tenant_ref=tenant_ref)
            raise TenantNotFound
        try:
            role = Role(found.role)
        except ValueError:
            raise TenantNotFound from None  # a role this code does not know: fail closed
        tenant = _tenant(found)
        if found.custom_role_id is None:
            return TenantContext(tenant=tenant, user_id=user_id, role=role)
        # The membership is established: row-level security may show this tenant's role rows.
        bind_tenant(session, tenant.id)
        custom = load_role(session, tenant.id, found.custom_role_id)
        return TenantContext(
            tenant=tenant,
            user_id=user_id,
            role=role,
            custom_role=None if custom is None else custom.name,
            # A role that vanished grants nothing (fail closed); the FK makes that unlikely.
            custom_permissions=frozenset() if custom is None else custom.permissions,
        )

    def _break_glass_context(
        self, session: Session, *, user_id: str, tenant_ref: str
    ) -> TenantContext:
        # The operator's own active grants first (row-level security lets an operator see their
        # own requests), then the tenant of one of them: an operator never looks at a tenant
        # they hold no active grant on.
        found = break_glass.active_grant_for_ref(
            session, operator_id=user_id, tenant_ref=tenant_ref, now=self._clock.now()
        )
        if found is None:
            raise TenantNotFound  # expired, revoked, pending or never asked: inert
        tenant, grant = found
        return TenantContext(
            tenant=_tenant(tenant),
            user_id=user_id,
            role=Role.VIEWER,
            custom_role=break_glass.BREAK_GLASS_ROLE_NAME,
            custom_permissions=break_glass.BREAK_GLASS_PERMISSIONS,
            break_glass_grant_id=grant.id,
        )

    def authorize(
        self,
        session: Session,
        context: TenantContext,
        permission: Permission,
        *,
        client: ClientInfo,
        route: str | None = None,
    ) -> None:
        """Return if the tenant's policy admits the request and the caller's effective
        permissions grant ``permission``; otherwise record the refusal on the tenant's chain
        and raise (an audited refusal: the edge commits the audit entry and nothing else).

        The tenant policy comes first (IpNotAllowed, then TenantMfaRequired, both 403), then
        PermissionDenied (403). Under a break-glass grant, an allowed request appends
        ``break_glass.read`` (grant, permission, ``route``) to the tenant's chain.
        """
        self._gate.enforce(session, context, client=client)
        if context.has_permission(permission):
            if context.break_glass_grant_id is not None:
                self._record(
                    session,
                    context.tenant_id,
                    AccessAction.BREAK_GLASS_READ,
                    actor=context.user_id,
                    target=context.break_glass_grant_id,
                    client=client,
                    details={"permission": permission.value, "route": (route or "")[:200]},
                )
                break_glass.keep_on_error(session)
            return
        details: dict[str, JsonValue] = {"permission": permission.value, "role": context.role.value}
        if context.custom_role is not None:
            details["custom_role"] = context.custom_role
        if context.api_key_id is not None:
            details["api_key_id"] = context.api_key_id
        self._record(
            session,
            context.tenant_id,
            AccessAction.PERMISSION_DENIED,
            actor=context.user_id,
            target=None,
            client=client,
            outcome=Outcome.DENIED,
            details=details,
        )
        raise PermissionDenied(permission=permission.value)

    def authorize_grant(
        self, session: Session, context: TenantContext, role: Role, *, client: ClientInfo
    ) -> None:
        """Check that the caller may hand out ``role``: owner needs OWNER_MANAGE, and a caller
        whose permissions come from a custom role, or an API key, may grant only a role whose
        permissions it holds itself (no escalation through a custom role with member management,
        nor through a key scoped to member management). PermissionDenied (403, audited)."""
        if role is Role.OWNER:
            self.authorize(session, context, Permission.OWNER_MANAGE, client=client)
        if context.custom_permissions is None and context.api_key_permissions is None:
            return  # a built-in role: the matrix already decided what it may hand out
        missing = sorted(permissions_of(role) - context.permissions)
        if missing:
            self.authorize(session, context, missing[0], client=client)

    def list_members(
        self, session: Session, context: TenantContext, *, after: str | None, limit: int
    ) -> list[Member]:
        """A page of the tenant's members ordered by user id, after ``after``."""
        size = max(1, min(limit, MAX_PAGE_SIZE))
        rows = repository.members(session, context.tenant_id, after_user_id=after, limit=size)
        names = (
            repository.custom_role_names(session, context.tenant_id)
            if any(row.custom_role_id for row in rows)
            else {}
        )
        return [_member(row, names) for row in rows]

    def add_member(
        self,
        session: Session,
        context: TenantContext,
        *,
        user_id: str,
        role: Role,
        client: ClientInfo,
    ) -> Member:
        """Add an existing user directly (interim until invitations by e-mail).

        Granting owner needs OWNER_MANAGE (see ``authorize_grant``). MemberNotFound if the user
        does not exist, AlreadyMember if already in the tenant.
        """
        self.authorize_grant(session, context, role, client=client)
        if repository.member(session, context.tenant_id, user_id) is not None:
            raise AlreadyMember
        try:
            with session.begin_nested():
                row = repository.add_membership(
                    session, context.tenant_id, user_id=user_id, role=role, now=self._clock.now()
                )
        except IntegrityError:
            raise MemberNotFound("No such user.") from None
        self._record(
            session,
            context.tenant_id,
            AccessAction.MEMBER_ADDED,
            actor=context.user_id,
            target=user_id,
            client=client,
            details={"role": role.value},
        )
        return _member(row)

    def change_role(
        self,
        session: Session,
        context: TenantContext,
        *,
        user_id: str,
        role: Role,
        client: ClientInfo,
    ) -> Member:
        """Set a member's role. Touching the owner role (granting it, or changing an owner)
        needs OWNER_MANAGE; the last owner cannot be downgraded (LastOwner, 409)."""
        row = self._member_for_change(session, context, user_id, client=client)
        previous = Role(row.role)
        if previous is not role or row.custom_role_id is not None:
            self.authorize_grant(session, context, role, client=client)
        if previous is role and row.custom_role_id is None:
            return _member(row)
        if previous is Role.OWNER and repository.owner_count(session, context.tenant_id) <= 1:
            raise LastOwner
        dropped = row.custom_role_id
        row.role = role.value
        # One role at a time: a built-in role replaces a custom one.
        row.custom_role_id = None
        row.updated_at = self._clock.now()
        session.flush()
        self._record(
            session,
            context.tenant_id,
            AccessAction.MEMBER_ROLE_CHANGED,
            actor=context.user_id,
            target=user_id,
            client=client,
            details={
                "from": previous.value,
                "to": role.value,
                **({"custom_role_dropped": dropped} if dropped else {}),
            },
        )
        return _member(row)

    def remove_member(
        self, session: Session, context: TenantContext, *, user_id: str, client: ClientInfo
    ) -> None:
        """Remove a member; their next request to this tenant is refused (404). Removing an
        owner needs OWNER_MANAGE; the last owner cannot be removed (LastOwner, 409)."""
        row = self._member_for_change(session, context, user_id, client=client)
        previous = Role(row.role)
        if previous is Role.OWNER and repository.owner_count(session, context.tenant_id) <= 1:
            raise LastOwner
        repository.delete_membership(session, row)
        # The member's API keys in this tenant die with the membership (a later re-invitation
        # does not bring them back).
        keys = api_key_repository.revoke_member_keys(
            session,
            context.tenant_id,
            user_id,
            now=self._clock.now(),
            by=context.user_id,
            reason="member_removed",
        )
        # So are the invitations they sent: accepted later (by an address they control), one
        # would bring back the access just removed.
        invitations = repository.withdraw_invitations_from(session, context.tenant_id, user_id)
        self._record(
            session,
            context.tenant_id,
            AccessAction.MEMBER_REMOVED,
            actor=context.user_id,
            target=user_id,
            client=client,
            details={
                "role": previous.value,
                "api_keys_revoked": keys,
                "invitations_withdrawn": invitations,
            },
        )

    def sole_owner_tenants(self, session: Session, user_id: str) -> list[Tenant]:
        """The tenants ``user_id`` is the last owner of: disabling or erasing that account would
        leave them without an owner, so the account paths refuse until ownership is handed on."""
        return [_tenant(row) for row in repository.tenants_solely_owned_by(session, user_id)]

    def record_audit_export(
        self, session: Session, context: TenantContext, *, client: ClientInfo
    ) -> None:
        """Record, on the tenant's chain, that its audit log was exported (a sensitive read)."""
        self._record(
            session,
            context.tenant_id,
            AccessAction.AUDIT_EXPORTED,
            actor=context.user_id,
            target=context.tenant_id,
            client=client,
        )

    def record(
        self,
        session: Session,
        context: TenantContext,
        action: AccessAction,
        *,
        target: str | None,
        client: ClientInfo,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        """Append a successful access action by the context's member to the tenant's chain."""
        self._record(
            session,
            context.tenant_id,
            action,
            actor=context.user_id,
            target=target,
            client=client,
            details=details,
        )

    def _member_for_change(
        self, session: Session, context: TenantContext, user_id: str, *, client: ClientInfo
    ) -> MembershipRow:
        # Lock first, then read: the owner count below must not change before this commits.
        repository.lock_tenant(session, context.tenant_id)
        row = repository.member(session, context.tenant_id, user_id)
        if row is None:
            raise MemberNotFound
        if row.role == Role.OWNER.value:
            self.authorize(session, context, Permission.OWNER_MANAGE, client=client)
        return row

    def _record(
        self,
        session: Session,
        tenant_id: TenantId,
        action: AccessAction,
        *,
        actor: str,
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


class _TenantColumns(Protocol):
    """A tenant as read: a ``TenantRow`` or a plain row of the resolution's SELECT."""

    @property
    def id(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


def _tenant(row: _TenantColumns) -> Tenant:
    created_at = as_utc(row.created_at)
    return Tenant(id=TenantId(row.id), slug=row.slug, name=row.name, created_at=created_at)


def _member(row: MembershipRow, custom_role_names: dict[str, str] | None = None) -> Member:
    custom = None
    if row.custom_role_id is not None:
        custom = (custom_role_names or {}).get(row.custom_role_id, row.custom_role_id)
    return Member(
        user_id=row.user_id,
        role=Role(row.role),
        joined_at=as_utc(row.created_at),
        custom_role=custom,
    )
