"""One synchronous step per tenant request: the hot path's alternative to a dependency tree.

``requires(permission)`` makes FastAPI solve about a dozen dependencies per request (container,
session, client, credential, the route's own), each a separate call and the session a generator
ending in a threadpool hop of its own; a record read took four hops. Profiled under load
(bench/bench_records.py), that plumbing cost more server CPU than the database work it wrapped.

``tenant_call(permission)`` declares the same rule (an ``AccessRule(PERMISSION, permission)``
that ``route_access`` reads back, so the route table still says who may call what) and yields
a ``TenantCall``. Its ``run`` does everything ``requires()`` and the request transaction do, in
the same order and with the same refusals, in **one** worker-thread hop: authenticate (session
or API key, read from the store now), resolve the tenant through the caller's membership (404
otherwise), narrow an API key, bind row-level security, enforce the tenant policy and the
permission (403, audited), then the route's own work, then commit (or roll back; an audited
refusal and a break-glass trace are committed, as ``get_session`` does). No context exists
outside ``run``: a route cannot reach tenant data without passing the check.

A read audited by the collection (``run_read``) then waits, still in that thread and after the
commit, until the group commit holding its event is durable (``ReadAuditBatcher.record``): the
answer is sent only after that, and a failed audit is a 503, never the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from anyio import to_thread
from fastapi import Request
from sqlalchemy.orm import Session

from bastion.access import Permission, TenantContext
from bastion.access.break_glass import kept_on_error
from bastion.api.deps import client_of, credential_of
from bastion.audit import AuditEvent
from bastion.bootstrap import Container
from bastion.db import bind_tenant
from bastion.errors import AppError
from bastion.identity import ClientInfo

T = TypeVar("T")

Work = Callable[[Session, TenantContext, ClientInfo], T]
"""A route's synchronous work inside the request transaction, given the authorized context."""


@dataclass(frozen=True, slots=True)
class TenantCall:
    """A tenant request not yet authorized; ``run`` authorizes it and runs the route's work."""

    request: Request
    container: Container
    tenant: str
    permission: Permission

    async def run(self, work: Work[T]) -> T:
        """``work``'s result, after the whole step ran and committed in one worker thread."""
        return await to_thread.run_sync(self.run_sync, work)

    async def run_read(self, work: Work[tuple[T, AuditEvent | None]]) -> T:
        """As ``run`` for a read: ``work`` also returns the read's audit event (None when the
        collection does not audit reads), recorded durably after the commit, before the
        caller gets the result (AuditWriteFailed, 503, otherwise)."""
        return await to_thread.run_sync(self._read_sync, work)

    def _read_sync(self, work: Work[tuple[T, AuditEvent | None]]) -> T:
        result, event = self.run_sync(work)
        if event is not None:
            # Blocks until the batch holding the event has committed; nothing was read that
            # this transaction could still change, and it has ended (no SQLite lock held).
            self.container.read_audit.record(event)
        return result

    def run_sync(self, work: Work[T]) -> T:
        """The step itself, for a caller already in a worker thread."""
        client = client_of(self.request)
        transaction = self.container.request_uow.begin()
        session = transaction.__enter__()
        try:
            context = authorize_tenant_request(
                self.request,
                self.container,
                session,
                tenant=self.tenant,
                permission=self.permission,
                client=client,
            )
            result = work(session, context, client)
        except AppError as exc:
            # A refusal is kept, and so is a break-glass request's trace (see get_session).
            if exc.audited_refusal or kept_on_error(session):
                transaction.__exit__(None, None, None)
            else:
                transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise
        except BaseException as exc:
            transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise
        transaction.__exit__(None, None, None)
        return result


def authorize_tenant_request(
    request: Request,
    container: Container,
    session: Session,
    *,
    tenant: str,
    permission: Permission,
    client: ClientInfo,
) -> TenantContext:
    """The caller's context in ``tenant`` if they may use ``permission`` there (see
    ``bastion.api.access.requires``, which this is the body of). TenantNotFound (404) for a
    tenant the caller is not a member of, PermissionDenied (403, audited)."""
    principal = credential_of(request, container, session)
    access = container.access
    # ``operator``: a non-member operator gets a read-only context while they hold an active
    # break-glass grant on this tenant (404 otherwise, like anyone else).
    context = access.resolve(
        session, user_id=principal.user_id, tenant_ref=tenant, operator=principal.is_operator
    )
    # An API key: its own tenant only, its permissions AND the creator's current role.
    context = container.api_keys.narrow(session, context, principal, client=client)
    bind_tenant(session, context.tenant_id)  # row-level security: this tenant's rows only
    # The tenant's IP allow-list and MFA requirement are checked first, inside authorize; the
    # route is recorded with every break-glass read.
    access.authorize(session, context, permission, client=client, route=request.url.path)
    return context


def tenant_call_dependency(permission: Permission) -> Callable[..., Any]:
    """The dependency behind ``bastion.api.access.tenant_call`` (which declares its rule)."""

    async def tenant_call(*, tenant: str, request: Request) -> TenantCall:
        # No I/O here (async: no threadpool hop); everything happens in TenantCall.run.
        container: Container = request.app.state.container
        return TenantCall(request, container, tenant, permission)

    return tenant_call
