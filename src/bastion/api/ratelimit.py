"""Request rate limits per endpoint class, as one pure ASGI middleware (docs/detection.md).

Classes: ``auth`` (every unsafe request under ``/api/v1/auth/``, invitation acceptance and the
first-operator page: the strictest), ``write`` (other unsafe methods), ``read`` (GET, HEAD) and
``default``. ``/healthz`` and ``/readyz`` are exempt (load balancers poll them). Every request
counts against its client address (``scope["state"]["client_ip"]``, set by the edge
middleware, which must wrap this one); a request that carries a credential also counts against
that credential (its SHA-256, never the token), so neither many addresses behind one key nor
many made-up keys from one address escape the limit. ``auth`` is keyed by address only: the
per-account limit of a login is detection's (``SqlLoginGuard``).

Over the limit: 429 problem+json with ``Retry-After``. Counter storage down (Redis configured
but unreachable): ``auth`` fails closed with 503 and an alert; every other class fails open
with a logged warning, because refusing all reads and writes would turn a Redis outage into a
full outage while the logins (the brute-force target) stay protected.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Final

import anyio
import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage as AsyncMemoryStorage
from limits.aio.storage import Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.alerts import SecurityEvent, Severity
from bastion.api.deps import SESSION_COOKIE
from bastion.api.problems import problem_response
from bastion.bootstrap import Container
from bastion.detection.counters import SWEEP_INTERVAL_SECONDS
from bastion.identity.first_operator import BOOTSTRAP_PATH
from bastion.observability.metrics import RATE_LIMITED
from bastion.settings import RateLimitSettings

EXEMPT_PATHS: Final = frozenset({"/healthz", "/readyz"})
AUTH_PREFIXES: Final = ("/api/v1/auth/", "/api/v1/invitations/", BOOTSTRAP_PATH)
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STORAGE_RETRY_AFTER_SECONDS: Final = 5
# One alert (and one fail-open warning) per process per this many seconds, not one per request.
STORAGE_ALERT_INTERVAL_SECONDS: Final = 60.0

log = structlog.get_logger("bastion.http")


class EndpointClass(enum.StrEnum):
    AUTH = "auth"
    WRITE = "write"
    READ = "read"
    DEFAULT = "default"


def classify(method: str, path: str) -> EndpointClass | None:
    """The class of a request, or None when it is exempt."""
    if path in EXEMPT_PATHS:
        return None
    if method not in SAFE_METHODS and path.startswith(AUTH_PREFIXES):
        return EndpointClass.AUTH
    if method in UNSAFE_METHODS:
        return EndpointClass.WRITE
    if method in SAFE_METHODS:
        return EndpointClass.READ
    return EndpointClass.DEFAULT


def credential_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """A short digest of the bearer token or session cookie, if the request carries one.

    The credential counted is the one that authenticates (``api.deps``): the first bearer
    header wherever it stands, else the session cookie as Starlette reads it (the last one
    across all Cookie lines). Otherwise a made-up cookie placed first would move the counter
    of the real key or session on every request."""
    cookie: str | None = None
    for name, value in headers:
        if name == b"authorization":
            return hashlib.sha256(value).hexdigest()[:32]
        if name == b"cookie":
            cookie = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE, cookie)
    return None if cookie is None else hashlib.sha256(cookie.encode()).hexdigest()[:32]


class SweptMemory(AsyncMemoryStorage):
    """``limits``' asynchronous in-process storage, sweeping expired windows at most once per
    ``SWEEP_INTERVAL_SECONDS`` instead of after nearly every counter write.

    ``MemoryStorage`` starts a sweep task whenever the previous one has finished, and a sweep
    walks every key it holds: with 10,000 clients counted in the last minute each request paid
    ~1.5 ms of CPU for it (against ~30 µs with ten), so many source addresses alone could make
    the rate limiter the bottleneck. Reads already ignore expired windows; the sweep only frees
    memory, so once a second is plenty. The counting itself is ``MemoryStorage``'s, unchanged
    (detection's ``ProcessMemory`` does the same for the synchronous storage).
    """

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_SECONDS

    # Replaces MemoryStorage's private scheduling hook (name-mangled there); a unit test fails
    # if sweeps follow writes again.
    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - the mangled name
        now = time.monotonic()
        if now < self._next_sweep or (self.timer is not None and not self.timer.done()):
            return
        self._next_sweep = now + SWEEP_INTERVAL_SECONDS
        sweep = getattr(self, "_MemoryStorage__expire_events")  # noqa: B009 - mangled name
        self.timer = asyncio.create_task(sweep())


def async_storage(settings: RateLimitSettings) -> Storage:
    """The asynchronous twin of detection's counter storage (same URL, same keys)."""
    url = settings.storage_url.get_secret_value() if settings.storage_url else "memory://"
    if url.startswith("memory://"):
        storage: object = SweptMemory()
    else:
        storage = storage_from_string(
            "async+" + url,
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=settings.key_prefix,
            socket_timeout=settings.storage_timeout_seconds,
            socket_connect_timeout=settings.storage_timeout_seconds,
        )
    if not isinstance(storage, Storage):
        raise TypeError("an asynchronous storage was expected")  # pragma: no cover
    return storage


class RateLimitMiddleware:
    """See the module docstring. ``on_storage_down`` runs in a worker thread (it may write the
    alert to the database), at most once per ``STORAGE_ALERT_INTERVAL_SECONDS``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: RateLimitSettings,
        on_storage_down: Callable[[], None] | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.app = app
        storage = storage or async_storage(settings)
        self.limiter: RateLimiter = (
            MovingWindowRateLimiter(storage)
            if settings.strategy == "moving-window"
            else SlidingWindowCounterRateLimiter(storage)
        )
        self.limits: Mapping[EndpointClass, RateLimitItem] = {
            cls: parse(getattr(settings, cls.value)) for cls in EndpointClass
        }
        self.on_storage_down = on_storage_down
        self._last_alert = -math.inf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = classify(scope["method"], scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        state = scope.get("state") or {}
        keys = [f"{endpoint}:ip:{state.get('client_ip') or 'unknown'}"]
        if endpoint is not EndpointClass.AUTH:
            credential = credential_key(scope["headers"])
            if credential is not None:
                keys.append(f"{endpoint}:cred:{credential}")
        item = self.limits[endpoint]
        try:
            for key in keys:
                if not await self.limiter.hit(item, key):
                    response = await self._refusal(scope, endpoint, item, key)
                    await response(scope, receive, send)
                    return
        except StorageError as exc:
            if await self._storage_down(scope, receive, send, endpoint, exc):
                return
        await self.app(scope, receive, send)

    async def _refusal(
        self, scope: Scope, endpoint: EndpointClass, item: RateLimitItem, key: str
    ) -> Response:
        RATE_LIMITED.labels(endpoint.value).inc()
        stats = await self.limiter.get_window_stats(item, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        log.warning("ratelimit.refused", endpoint_class=endpoint.value, path=scope["path"])
        return problem_response(
            429,
            detail=f"Too many {endpoint.value} requests; retry after {retry_after} seconds.",
            code="ratelimit.exceeded",
            slug="rate-limited",
            request_id=(scope.get("state") or {}).get("request_id"),
            headers={"Retry-After": str(retry_after)},
            extra={"endpoint_class": endpoint.value},
        )

    async def _storage_down(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: EndpointClass,
        exc: StorageError,
    ) -> bool:
        """Answer 503 for auth (True: answered) or let the request through (False)."""
        now = time.monotonic()
        due = now - self._last_alert >= STORAGE_ALERT_INTERVAL_SECONDS
        if due:
            self._last_alert = now
            log.error(
                "ratelimit.storage_unavailable",
                error=type(exc.storage_error).__name__,
                fail_closed=endpoint is EndpointClass.AUTH,
            )
            if self.on_storage_down is not None:
                await anyio.to_thread.run_sync(self.on_storage_down)
        if endpoint is not EndpointClass.AUTH:
            return False
        response = problem_response(
            503,
            detail="Sign-in and other authentication requests are unavailable: the rate-limit "
            "counters cannot be reached. Retry shortly.",
            code="ratelimit.storage_unavailable",
            slug="rate-limit-storage-unavailable",
            request_id=(scope.get("state") or {}).get("request_id"),
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
        )
        await response(scope, receive, send)
        return True


def storage_down_alert(container: Container) -> Callable[[], None]:
    """Record a HIGH ``ratelimit.storage_unavailable`` security event (alert sinks route it)."""

    def alert() -> None:
        try:
            with container.uow.begin() as session:
                container.security_events.record(
                    session,
                    SecurityEvent(
                        type="ratelimit.storage_unavailable",
                        severity=Severity.HIGH,
                        subject="rate-limit-storage",
                        details={"auth": "refused with 503", "other": "allowed unlimited"},
                    ),
                )
        # The alert of one outage must never fail the request that noticed it (the database
        # may be down too): the log line above is then the only trace.
        except Exception:  # the database may be down too: see above
            log.exception("ratelimit.alert_failed")

    return alert
