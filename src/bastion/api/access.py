"""Access declarations: every route says, in one place, what it needs to be called.

Three declarations exist, each a FastAPI dependency that both *enforces* the rule and *records*
it on the dependency (``ACCESS_RULE_ATTRIBUTE``), so the route table itself says who may call
what, and ``route_access`` reads it back:

- ``public()``: anyone (health probes, sign-up, login, the first-operator bootstrap).
- ``authenticated()``: any signed-in principal, no tenant permission (``/me``, ``/tenants``).
- ``operator()``: a signed-in operator (staff) with an enrolled second factor; never grants
  tenant data (routes under ``/api/v1/operator``).
- ``requires(Permission.X)``: the ``{tenant}`` path parameter resolved through the caller's
  membership, read from the database on this request (404 for another tenant), then the
  permission checked against the role (403 problem, audited on the tenant's chain). The one
  declaration an API key may pass: the key must be bound to that tenant (404 otherwise, as for
  a stranger) and its effective permissions are its own AND its creator's current role.
  ``tenant_call(Permission.X)`` declares and enforces the same rule for a route that does its
  whole synchronous work in one step (``bastion.api.tenant_call``: the record hot path).

``tests/unit/api/test_route_access.py`` walks ``app.routes`` and fails for any route with no
declaration, or with more than one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from bastion.access import Permission, TenantContext
from bastion.access.errors import OperatorOnly
from bastion.api.deps import (
    ClientDep,
    ContainerDep,
    EnrollingPrincipalDep,
    PrincipalDep,
    SessionDep,
    ensure_enrolled,
    get_enrolling_principal,
)
from bastion.api.tenant_call import authorize_tenant_request, tenant_call_dependency
from bastion.errors import AppError
from bastion.identity import Principal

ACCESS_RULE_ATTRIBUTE: Final = "__bastion_access__"


class AccessKind(enum.StrEnum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    OPERATOR = "operator"
    PERMISSION = "permission"


@dataclass(frozen=True, slots=True)
class AccessRule:
    kind: AccessKind
    permission: Permission | None = None

    def __str__(self) -> str:
        return self.permission.value if self.permission is not None else self.kind.value


def _declare(function: Callable[..., Any], rule: AccessRule) -> Callable[..., Any]:
    setattr(function, ACCESS_RULE_ATTRIBUTE, rule)
    return function


async def _anyone() -> None:
    return None


_declare(_anyone, AccessRule(AccessKind.PUBLIC))


def public() -> Any:
    """Declare a route (or a router, at ``include_router``) callable without authentication."""
    return Depends(_anyone)


async def _signed_in(principal: PrincipalDep) -> Principal:
    return principal


async def _signed_in_enrolling(principal: EnrollingPrincipalDep) -> Principal:
    return principal


def _signed_in_apart(request: Request, container: ContainerDep) -> Principal:
    # Authenticated in a short transaction of its own, committed before the route runs. Tenant
    # creation needs this: the keyring provisions the data key in its own transaction, and on
    # SQLite that would wait on the request's write lock if authentication had just refreshed
    # the session's last-seen time in the request transaction.
    refusal: AppError | None = None
    with container.request_uow.begin() as session:
        try:
            return ensure_enrolled(get_enrolling_principal(request, container, session))
        except AppError as exc:
            if not exc.audited_refusal:
                raise
            refusal = exc  # committed, as get_session does: e.g. an API key refused here
    raise refusal


for _function in (_signed_in, _signed_in_enrolling, _signed_in_apart):
    _declare(_function, AccessRule(AccessKind.AUTHENTICATED))


def authenticated(*, allow_mfa_enrolment: bool = False, own_transaction: bool = False) -> Any:
    """Declare (and enforce) a signed-in caller with no tenant permission; yields the Principal.

    ``allow_mfa_enrolment`` admits an operator who still has to enrol a second factor (the
    ``/me`` routes, which then apply their own stricter dependency where needed).
    ``own_transaction`` authenticates outside the request transaction (see ``_signed_in_apart``).
    """
    if own_transaction:
        return Depends(_signed_in_apart)
    return Depends(_signed_in_enrolling if allow_mfa_enrolment else _signed_in)


async def _operator_only(principal: PrincipalDep) -> Principal:
    if not principal.is_operator:
        raise OperatorOnly
    return principal


def _operator_apart(request: Request, container: ContainerDep) -> Principal:
    # As _signed_in_apart: the keyring's own transactions (key rotation, re-encryption) would
    # wait on SQLite's write lock if authentication had just refreshed the session's last-seen
    # time in the request transaction.
    refusal: AppError | None = None
    with container.request_uow.begin() as session:
        try:
            principal = ensure_enrolled(get_enrolling_principal(request, container, session))
        except AppError as exc:
            if not exc.audited_refusal:
                raise
            refusal = exc  # an API key's refusal is audited: commit that, then refuse
    if refusal is not None:
        raise refusal
    if not principal.is_operator:
        raise OperatorOnly
    return principal


for _function in (_operator_only, _operator_apart):
    _declare(_function, AccessRule(AccessKind.OPERATOR))


def operator(*, own_transaction: bool = False) -> Any:
    """Declare (and enforce) an operator caller with an enrolled second factor; yields the
    Principal. Anyone else gets 403 (OperatorOnly). Operator routes run the service; they must
    never return tenant data (break-glass grants are the one, audited, exception).

    ``own_transaction`` authenticates outside the request transaction (see ``_operator_apart``).
    """
    return Depends(_operator_apart if own_transaction else _operator_only)


def requires(permission: Permission) -> Any:
    """Declare (and enforce) ``permission`` in the ``{tenant}`` of the path; yields the
    TenantContext. TenantNotFound (404) for a tenant the caller is not a member of,
    PermissionDenied (403, audited) for a member whose role lacks the permission."""

    def tenant_permission(
        *,
        tenant: str,
        request: Request,
        container: ContainerDep,
        session: SessionDep,
        client: ClientDep,
    ) -> TenantContext:
        # Authenticated here rather than through CredentialDep: one threadpool hop less a call.
        return authorize_tenant_request(
            request, container, session, tenant=tenant, permission=permission, client=client
        )

    _declare(tenant_permission, AccessRule(AccessKind.PERMISSION, permission))
    return Depends(tenant_permission)


def tenant_call(permission: Permission) -> Any:
    """Declare ``permission`` in the ``{tenant}`` of the path, as ``requires`` does, for a route
    that does its whole synchronous work in one step; yields a ``TenantCall`` whose ``run``
    authorizes exactly as ``requires`` (same order, same refusals) and then runs the route's
    work in the same transaction and worker thread (see ``bastion.api.tenant_call``)."""
    dependency = tenant_call_dependency(permission)
    _declare(dependency, AccessRule(AccessKind.PERMISSION, permission))
    return Depends(dependency)


def _rules(dependant: Dependant) -> Iterator[AccessRule]:
    for dependency in dependant.dependencies:
        rule = getattr(dependency.call, ACCESS_RULE_ATTRIBUTE, None)
        if isinstance(rule, AccessRule):
            yield rule
        yield from _rules(dependency)


def declared_rules(dependant: Dependant) -> list[AccessRule]:
    """Every access declaration in a route's dependency tree (its own and its routers')."""
    return list(_rules(dependant))


@dataclass(frozen=True, slots=True)
class RouteAccess:
    """One route of an app as served, with what it declares."""

    path: str
    methods: frozenset[str]
    rules: tuple[AccessRule, ...]


def route_access(app: FastAPI) -> list[RouteAccess]:
    """Every API route ``app`` serves, with the access rules its dependencies declare.

    Reads the *effective* routes (with the dependencies added at ``include_router``), which is
    what a request actually goes through.
    """
    found: list[RouteAccess] = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue  # the OpenAPI document and other plain Starlette routes
        dependant: Dependant = context.dependant
        found.append(
            RouteAccess(
                path=str(context.path),
                methods=frozenset(context.methods or ()),
                rules=tuple(declared_rules(dependant)),
            )
        )
    return found
