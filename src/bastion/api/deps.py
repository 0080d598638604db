"""Request dependencies as ``Annotated`` aliases reading the container on ``app.state``.

Authentication (``PrincipalDep``): ``Authorization: Bearer <token>`` or the
``__Host-bastion_session`` cookie, checked against the store on every request. A bearer header,
when present, is the only credential considered (a browser never adds one on its own, so bearer
requests need no CSRF proof). Cookie-authenticated requests with an unsafe method must carry
``X-CSRF-Token`` equal to the ``csrf_token`` returned at login (synchronizer token, compared
with the session's stored hash): a cross-site page can make the browser send the cookie, but it
can neither read the token nor set a custom header without a CORS preflight, which Bastion never
grants.

API keys (``Authorization: Bearer bst_...``) are recognised here too, but only ``CredentialDep``
(used by ``requires()``, the tenant-permission declaration) accepts them; every other route gets
a 403 (``access.api_key_not_allowed``, audited): keys are denied by default, so a new account or
operator route never becomes reachable with a key by accident.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Annotated

from anyio import CancelScope, CapacityLimiter, to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bastion.access.break_glass import kept_on_error
from bastion.bootstrap import Container
from bastion.db import bind_user
from bastion.errors import AppError
from bastion.identity import ClientInfo, NotAuthenticated, Principal
from bastion.identity.errors import CsrfCheckFailed, MfaEnrolmentRequired

SESSION_COOKIE = "__Host-bastion_session"
CSRF_COOKIE = "__Host-bastion_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_USER_AGENT_CHARS = 512


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in the
# threadpool, a hop that cost more than the rest of a /healthz request (bench/bench_http.py).
async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_session(container: ContainerDep) -> AsyncIterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises.

    An *audited refusal* (``AppError.audited_refusal``: a failed login, a wrong second-factor
    code) is committed and then re-raised: the service wrote only what records the refusal (the
    audit entry, an MFA challenge or a failure counter) before raising, and that must be kept.

    ``async``: opening the session does no I/O (the transaction starts at its first statement,
    in whichever dependency or route runs it in the threadpool), so only the commit or rollback
    takes a threadpool hop, where a plain generator took two (bench/bench_records.py).
    """
    # The request path's role: on PostgreSQL with database.app_url, row-level security binds it.
    transaction = container.request_uow.begin()
    session = transaction.__enter__()
    try:
        yield session
    except AppError as exc:
        # A refusal is kept, and so is a break-glass request's trace (see kept_on_error).
        keep = exc.audited_refusal or kept_on_error(session)
        await _end(transaction, None if keep else exc)
        raise
    except BaseException as exc:
        await _end(transaction, exc)
        raise
    else:
        await _end(transaction, None)


async def _end(transaction: AbstractContextManager[Session], error: BaseException | None) -> None:
    """Commit (``error`` None) or roll back in the threadpool, as FastAPI ends a sync generator
    dependency: shielded, so a cancelled request still ends its transaction and returns its
    connection, and under a limiter of its own, so a commit that would release SQLite's write
    lock never waits for a worker thread held by a request waiting on that lock."""
    with CancelScope(shield=True):
        if error is None:
            await to_thread.run_sync(transaction.__exit__, None, None, None, limiter=_limiter())
        else:
            await to_thread.run_sync(
                transaction.__exit__, type(error), error, error.__traceback__, limiter=_limiter()
            )


def _limiter() -> CapacityLimiter:
    return CapacityLimiter(1)  # a new one per call: no limit shared between requests


# scope="function": the commit happens before the response is sent. With FastAPI's default
# ("request") it would run after, so a client could read "201 Created" for a write that then
# failed to commit, or race its own next request past the commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_client(request: Request) -> ClientInfo:
    """The caller's address (from the edge middleware), User-Agent and request id."""
    return client_of(request)


def client_of(request: Request) -> ClientInfo:
    """``get_client`` for code that is not itself a dependency."""
    user_agent = request.headers.get("user-agent")
    return ClientInfo(
        ip=getattr(request.state, "client_ip", None),
        user_agent=user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None,
        request_id=getattr(request.state, "request_id", None),
    )


ClientDep = Annotated[ClientInfo, Depends(get_client)]


def get_enrolling_principal(
    request: Request, container: ContainerDep, session: SessionDep
) -> Principal:
    """The authenticated caller, even an operator who has not enrolled a second factor yet.

    Only the routes that let such an operator enrol (and see themselves, and log out) use this;
    everything else uses ``PrincipalDep``. 401 (NotAuthenticated) / 403 (CsrfCheckFailed).
    The transaction is then bound to the principal (row-level security: their own memberships).
    An API key is refused (403 ApiKeyNotAllowed, audited): see the module docstring.
    """
    principal = _authenticate(request, container, session)
    bind_user(session, principal.user_id)
    if principal.is_api_key:
        container.api_keys.refuse_route(session, principal, client=client_of(request))
    return principal


def _authenticate(request: Request, container: Container, session: Session) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated
        token = token.strip()
        if container.api_keys.is_api_key(token):
            return container.api_keys.authenticate(session, token=token, client=client_of(request))
        return container.identity.authenticate(session, token=token, via_cookie=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotAuthenticated
    return container.identity.authenticate(
        session,
        token=cookie,
        via_cookie=True,
        csrf_token=request.headers.get(CSRF_HEADER),
        require_csrf=request.method not in SAFE_METHODS,
    )


EnrollingPrincipalDep = Annotated[Principal, Depends(get_enrolling_principal)]


def ensure_enrolled(principal: Principal) -> Principal:
    """``principal``, or 403 (MfaEnrolmentRequired) while an operator has no second factor."""
    if principal.must_enrol_mfa:
        raise MfaEnrolmentRequired
    return principal


async def get_principal(principal: EnrollingPrincipalDep) -> Principal:
    """The authenticated caller, refused with 403 (MfaEnrolmentRequired) while an operator has
    no second factor: fail closed, so every new route is covered without opting in."""
    return ensure_enrolled(principal)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_credential(request: Request, container: ContainerDep, session: SessionDep) -> Principal:
    """The authenticated caller, a session (as ``PrincipalDep``) or an API key. Only
    ``requires()`` may use it: it narrows a key to the key's tenant and permissions."""
    return credential_of(request, container, session)


def credential_of(request: Request, container: Container, session: Session) -> Principal:
    """``get_credential`` for ``requires()``, which calls it inline (one threadpool hop less).

    Authenticated once per request: a route that also takes ``CredentialDep`` gets the principal
    ``requires()`` already checked, read from the store on *this* request (never across requests:
    revocation stays instant).
    """
    cached: Principal | None = getattr(request.state, _CREDENTIAL_STATE, None)
    if cached is not None:
        return cached
    principal = _authenticate(request, container, session)
    bind_user(session, principal.user_id)
    ensure_enrolled(principal)
    setattr(request.state, _CREDENTIAL_STATE, principal)
    return principal


_CREDENTIAL_STATE = "bastion_credential"


CredentialDep = Annotated[Principal, Depends(get_credential)]


async def refuse_cross_site(request: Request) -> None:
    """Refuse unauthenticated state changes a cross-site page triggered (login CSRF).

    Browsers send ``Sec-Fetch-Site`` on every request; non-browser clients send none and pass.
    """
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfCheckFailed("Cross-site requests may not sign in, sign up or reset passwords.")


SameSiteOnly = Depends(refuse_cross_site)
