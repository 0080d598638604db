"""Verifying Bastion's alert webhooks on the receiving side. Standard library only: copy this
file into a receiver as it is.

Bastion signs each POST with the header::

    Bastion-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

(several ``v1=`` values may appear while a secret is being rotated). A receiver must check, in
this order and before acting on anything in the body:

1. the timestamp is within ``tolerance_seconds`` of its own clock (a captured request stops
   working after that),
2. one ``v1`` value equals the HMAC of the raw body bytes under the shared secret (compared in
   constant time),
3. the event ``id`` in the body has not been accepted before (a captured request replayed within
   the tolerance is refused).

``WebhookVerifier`` does all three and remembers accepted ids for the tolerance window (older
ones would fail step 1 anyway). It keeps that memory in the process: a receiver running several
processes should store ids in its database instead (``is_new_id`` is the place to override).
Answer ``409`` to a ``ReplayedWebhook``: Bastion counts 409 as "already delivered" and stops
retrying, which covers the case where your 2xx was lost on the way back.

Example (any framework)::

    verifier = WebhookVerifier(secret=shared_secret)  # the sink's "secret" setting
    try:
        event = verifier.verify(request_body_bytes, request.headers["Bastion-Signature"])
    except ReplayedWebhook:
        return 409
    except WebhookRejected:
        return 400
    handle(event)
    return 204
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

SIGNATURE_HEADER: Final = "Bastion-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300
MAX_HEADER_CHARS: Final = 1024
MAX_TIMESTAMP_DIGITS: Final = 12  # unix seconds until the year 33658


class WebhookRejected(ValueError):
    """The request is not a valid, fresh webhook from Bastion; do not act on it."""


class ReplayedWebhook(WebhookRejected):
    """A validly signed request whose event id was already accepted."""


def signature_for(secret: bytes, body: bytes, timestamp: int) -> str:
    """The hex ``v1`` value: HMAC-SHA256 over ``"<timestamp>." + body``."""
    return hmac.new(
        secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()


def signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    """The whole ``Bastion-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={signature_for(secret, body, timestamp)}"


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """``(timestamp, [v1 values])``; WebhookRejected if the header is malformed."""
    if len(header) > MAX_HEADER_CHARS:
        raise WebhookRejected("signature header too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # ASCII only: str.isdigit() takes other scripts' digits, a thousand-digit t overflows
        # the float comparison, and compare_digest raises TypeError on non-ASCII text; each
        # would escape as something other than WebhookRejected.
        if not value.isascii():
            continue
        if name == "t" and value.isdigit() and len(value) <= MAX_TIMESTAMP_DIGITS:
            if timestamp is None:
                timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected("signature header needs t= and v1=")
    return timestamp, signatures


class WebhookVerifier:
    """Checks freshness, signature and replay of Bastion alert webhooks (see module docs)."""

    def __init__(
        self,
        secret: str | bytes | Iterable[str | bytes],
        *,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        candidates = [secret] if isinstance(secret, str | bytes) else list(secret)
        self._secrets = [s.encode("utf-8") if isinstance(s, str) else s for s in candidates]
        if not self._secrets or not all(self._secrets):
            raise ValueError("a webhook secret is required")
        self._tolerance = tolerance_seconds
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, body: bytes, header: str | None) -> dict[str, Any]:
        """The event as a dict, or WebhookRejected (ReplayedWebhook for a repeated id)."""
        if header is None:
            raise WebhookRejected("missing signature header")
        timestamp, signatures = parse_signature_header(header)
        now = self._clock()
        if abs(now - timestamp) > self._tolerance:
            raise WebhookRejected("timestamp outside the tolerance")
        if not any(
            hmac.compare_digest(signature_for(secret, body, timestamp), candidate)
            for secret in self._secrets
            for candidate in signatures
        ):
            raise WebhookRejected("signature does not match")
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookRejected("body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookRejected("body is not a JSON object")
        event_id = event.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise WebhookRejected("body has no event id")
        if not self.is_new_id(event_id, now):
            raise ReplayedWebhook(f"event {event_id} was already accepted")
        accepted: dict[str, Any] = event
        return accepted

    def is_new_id(self, event_id: str, now: float) -> bool:
        """Remember ``event_id``; False if it was seen within the tolerance window."""
        with self._lock:
            horizon = now - 2 * self._tolerance
            for old in [key for key, seen in self._seen.items() if seen < horizon]:
                del self._seen[old]
            if event_id in self._seen:
                return False
            self._seen[event_id] = now
            return True
