"""The HTTP edge as one pure ASGI middleware (BaseHTTPMiddleware costs too much per request).

For every request it: assigns a request id; resolves the client address (X-Forwarded-For believed
only from trusted proxies); refuses bodies over the limit with 413; adds the security headers; turns
any unexpected exception into a generic 500 problem (the traceback goes to the log, never the
client); writes one JSON access-log line; and counts the request by route template for the
metrics listener.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.api.problems import problem_response
from bastion.kernel.ids import new_id
from bastion.observability.http import observe_request

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id is kept only if it is short and plain, so it cannot forge log lines. Checked
# with fullmatch: "$" would also accept a trailing newline (found by tests/unit/properties).
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")

log = structlog.get_logger("bastion.http")

Network = IPv4Network | IPv6Network


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; FastAPI lets HTTPException through its body parsing untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


def security_headers(*, hsts_max_age: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode()),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]


def resolve_client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]
) -> str | None:
    """The client address: the peer, unless the peer is a trusted proxy speaking for someone.

    X-Forwarded-For is read right to left; trusted hops are skipped and the first untrusted
    address is the client. Anything malformed falls back to the last trustworthy hop. An
    IPv4-mapped address (``::ffff:a.b.c.d``, how a dual-stack listener reports IPv4 peers) is
    the IPv4 address it carries: a trusted IPv4 proxy stays trusted, and limits and blocks see
    one form of each client.
    """
    if peer is None:
        return None
    peer = _canonical(peer)
    if not trusted_proxies or not forwarded_for or not _is_trusted(peer, trusted_proxies):
        return peer
    client = peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        try:
            address = _mapped_to_ipv4(ip_address(hop))
        except ValueError:
            return client
        client = str(address)
        if not _in_any(address, trusted_proxies):
            return client
    return client


def _mapped_to_ipv4(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _canonical(peer: str) -> str:
    try:
        return str(_mapped_to_ipv4(ip_address(peer)))
    except ValueError:
        return peer  # not an IP address (a Unix socket's peer): kept as it is


def _is_trusted(peer: str, trusted: Iterable[Network]) -> bool:
    try:
        return _in_any(ip_address(peer), trusted)
    except ValueError:
        return False


def _in_any(address: IPv4Address | IPv6Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


_EDGE_HEADERS = (REQUEST_ID_HEADER, b"x-forwarded-for", b"content-length")


def _edge_headers(scope: Scope) -> dict[bytes, str]:
    """The few request headers the edge reads, in one pass over the list (first one wins),
    except X-Forwarded-For, whose lines are one list in order (RFC 9110, 5.3): a proxy that
    appends its own line must not leave the client's forged first line as the address."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key not in _EDGE_HEADERS:
            continue
        if key not in found:
            found[key] = value.decode("latin-1")
        elif key == b"x-forwarded-for":
            found[key] += "," + value.decode("latin-1")
    return found


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        trusted_proxies: Sequence[Network],
        hsts_max_age: int,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = tuple(trusted_proxies)
        self.headers = security_headers(hsts_max_age=hsts_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _edge_headers(scope)
        request_id, client_ip = self._identify(scope, headers)
        status = 0
        response_started = False
        extra_headers = [*self.headers, (REQUEST_ID_HEADER, request_id.encode())]

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        # bind/reset rather than bound_contextvars(), which copies the whole context per request.
        context_tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            try:
                declared = headers.get(b"content-length")
                if (
                    declared is not None
                    and declared.isdigit()
                    and int(declared) > self.max_body_bytes
                ):
                    await self._problem(scope, receive, send_with_headers, 413, request_id)
                else:
                    await self.app(scope, limited_receive, send_with_headers)
            except BodyTooLarge:
                if not response_started:
                    await self._problem(scope, receive, send_with_headers, 413, request_id)
            except Exception:
                log.exception("request.failed", path=scope.get("path"))
                if not response_started:
                    await self._problem(scope, receive, send_with_headers, 500, request_id)
            finally:
                elapsed = time.perf_counter() - started
                observe_request(scope, status, elapsed)
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status,
                    client_ip=client_ip,
                    duration_ms=round(elapsed * 1000, 2),
                )
        finally:
            structlog.contextvars.reset_contextvars(**context_tokens)

    def _identify(self, scope: Scope, headers: dict[bytes, str]) -> tuple[str, str | None]:
        """Request id and client address, also stored in ``scope["state"]`` for the app."""
        incoming_id = headers.get(REQUEST_ID_HEADER)
        request_id = (
            incoming_id if incoming_id and SAFE_REQUEST_ID.fullmatch(incoming_id) else new_id()
        )
        peer = scope["client"][0] if scope.get("client") else None
        client_ip = resolve_client_address(
            peer, headers.get(b"x-forwarded-for"), self.trusted_proxies
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = client_ip
        return request_id, client_ip

    async def _problem(
        self, scope: Scope, receive: Receive, send: Send, status: int, request_id: str
    ) -> None:
        if status == 413:
            detail = f"The request body exceeds the limit of {self.max_body_bytes} bytes."
            code = "http.413"
        else:
            detail = "An unexpected error occurred; quote the request id when reporting it."
            code = "http.500"
        response = problem_response(status, detail=detail, code=code, request_id=request_id)
        await response(scope, receive, send)
