"""Bastion's error model.

Every failure a caller may see is an ``AppError``. Domain errors inherit a domain base and one
*kind*; the kind alone decides the HTTP status (in ``bastion.api.errors``) and the CLI exit code::

    AppError
    ├── NotFound          404   (also: another tenant's object; no existence oracle)
    ├── Conflict          409
    ├── PreconditionFailed 412  (If-Match named a version that is no longer current)
    ├── PayloadTooLarge   413   (a body or document over its configured size)
    ├── UnsupportedMediaType 415 (a body in a content type the route does not take)
    ├── InvalidInput      400
    │   └── Unprocessable 422   (well-formed, but a rule refuses it: e.g. a password policy)
    ├── Unauthenticated   401
    ├── Forbidden         403
    ├── Gone              410
    ├── RateLimited       429   (carries retry_after)
    ├── NotImplementedYet 501   (a capability that has not landed; says which)
    └── Unavailable       503
    ConfigError           settings or environment refused at start-up (exit status 2)
    StartupError          the process cannot serve (exit status 1), one line of explanation

``code`` is stable and machine-readable (``<domain>.<snake_reason>``); ``public_message`` is safe to
show anyone; ``details`` must never hold a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class AppError(Exception):
    code: ClassVar[str] = "bastion.error"
    public_message: ClassVar[str] = "The request could not be completed."
    # An *audited refusal* (e.g. a failed login): the edge commits what the service wrote before
    # raising, which must be only what records the refusal (the audit entry; an MFA challenge or
    # its attempt counter), so that the refusal itself is on record.
    audited_refusal: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, **details: Any) -> None:
        self.detail = detail or self.public_message
        self.details: Mapping[str, Any] = details
        super().__init__(self.detail)


class NotFound(AppError):
    code = "bastion.not_found"
    public_message = "Not found."


class Conflict(AppError):
    code = "bastion.conflict"
    public_message = "The request conflicts with the current state."


class PreconditionFailed(AppError):
    code = "bastion.precondition_failed"
    public_message = "The resource changed since the version named in the precondition."


class PayloadTooLarge(AppError):
    code = "bastion.payload_too_large"
    public_message = "The request body is too large."


class UnsupportedMediaType(AppError):
    code = "bastion.unsupported_media_type"
    public_message = "The request body's content type is not accepted here."


class InvalidInput(AppError):
    code = "bastion.invalid_input"
    public_message = "The request is not valid."


class Unprocessable(InvalidInput):
    code = "bastion.unprocessable"
    public_message = "The request is well-formed but a rule refuses it."


class Unauthenticated(AppError):
    code = "bastion.unauthenticated"
    public_message = "Authentication is required."


class Forbidden(AppError):
    code = "bastion.forbidden"
    public_message = "You are not allowed to do this."


class Gone(AppError):
    code = "bastion.gone"
    public_message = "This is no longer available."


class RateLimited(AppError):
    code = "bastion.rate_limited"
    public_message = "Too many requests."

    def __init__(self, detail: str | None = None, *, retry_after: int, **details: Any) -> None:
        super().__init__(detail, **details)
        self.retry_after = retry_after


class NotImplementedYet(AppError):
    code = "bastion.not_implemented_yet"
    public_message = "This capability is not available yet."


class Unavailable(AppError):
    code = "bastion.unavailable"
    public_message = "The service is not ready."


class ConfigError(Exception):
    """Settings refused; the message names each offending key."""


class StartupError(Exception):
    """The process cannot start; the message is one line telling the operator what to do."""
