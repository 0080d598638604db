"""Errors the client raises: every refusal carries the server's problem+json fields.

The server answers every error as RFC 9457 problem details with a stable ``code``
(``identity.mfa_required``, ``access.tenant_not_found``, ...). Callers branch on the exception
class for the HTTP meaning and on ``code`` for Bastion's own reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class BastionError(Exception):
    """Anything the client could not do."""


class TransportError(BastionError):
    """No HTTP answer at all: connection refused, TLS failure, timeout."""


class ProblemError(BastionError):
    """The server refused the call; the fields are those of its problem+json body."""

    def __init__(
        self,
        status: int,
        *,
        type: str = "about:blank",
        title: str = "",
        detail: str = "",
        code: str = "",
        request_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code or title}: {detail}".strip())
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.code = code
        self.request_id = request_id
        self.extra: dict[str, Any] = dict(extra or {})
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(ProblemError):
    """400: malformed input, or an unknown, spent or expired token."""


class AuthenticationFailed(ProblemError):
    """401: no valid credentials (one answer for every reason, by design)."""


class MfaRequired(AuthenticationFailed):
    """401 ``identity.mfa_required``: the password was right; finish with ``complete_mfa``."""

    @property
    def mfa_token(self) -> str:
        return str(self.extra.get("mfa_token", ""))


class Forbidden(ProblemError):
    """403: authenticated, but not allowed (role, step-up, enrolment or IP policy)."""


class NotFound(ProblemError):
    """404: no such object, or one that is not yours (the server does not say which)."""


class Conflict(ProblemError):
    """409: the change conflicts with current state (slug taken, last owner, ...)."""


class PreconditionFailed(ProblemError):
    """412: ``If-Match`` named a version that is no longer current; re-read and retry."""


class PayloadTooLarge(ProblemError):
    """413: the body is over the server's limit."""


class ValidationFailed(ProblemError):
    """422: the body or a parameter is invalid; ``errors`` lists where (JSON Pointers)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        found = self.extra.get("errors", [])
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


class RateLimited(ProblemError):
    """429: too many calls; ``retry_after`` seconds until the next one may pass."""

    @property
    def retry_after(self) -> int | None:
        value = self.headers.get("retry-after")
        return int(value) if value is not None and value.isdigit() else None


class ServerError(ProblemError):
    """5xx: the server failed or is unavailable (``/readyz`` says why)."""


_BY_STATUS: Mapping[int, type[ProblemError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}

_KNOWN_FIELDS = ("type", "title", "status", "detail", "code", "request_id")


def problem_from(status: int, body: object, headers: Mapping[str, str]) -> ProblemError:
    """The exception for an error answer; tolerates a body that is not problem+json."""
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ProblemError)
    if status == 401 and fields.get("code") == "identity.mfa_required":
        kind = MfaRequired
    return kind(
        status,
        type=str(fields.get("type", "about:blank")),
        title=str(fields.get("title", "")),
        detail=str(fields.get("detail", "")),
        code=str(fields.get("code", "")),
        request_id=fields.get("request_id") if isinstance(fields.get("request_id"), str) else None,
        extra={k: v for k, v in fields.items() if k not in _KNOWN_FIELDS},
        headers={k.lower(): v for k, v in headers.items()},
    )
