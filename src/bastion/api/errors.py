"""The one place where errors become HTTP: AppError kinds, framework errors, validation errors,
and a database that cannot be reached (503, DESIGN invariant 5: fail closed and say so).

Unexpected exceptions never reach here; the edge middleware turns them into a generic 500 problem
and logs the traceback with the request id.
"""

from __future__ import annotations

from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bastion import errors
from bastion.api.openapi import install_problem_openapi
from bastion.api.problems import problem_response

# Most specific first: the first kind in an error's MRO that appears here decides the status.
STATUS_BY_KIND: dict[type[errors.AppError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.Unprocessable: 422,
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.Gone: 410,
    errors.RateLimited: 429,
    errors.NotImplementedYet: 501,
    errors.Unavailable: 503,
}
VALIDATION_ERRORS_SHOWN = 20
# Seconds a client should wait before retrying while the database is away.
DATABASE_RETRY_AFTER_SECONDS = 5

log = structlog.get_logger("bastion.http")


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def status_for(error: errors.AppError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 500


async def _app_error(request: Request, raised: Exception) -> Response:
    exc = cast(errors.AppError, raised)  # registered for AppError only
    headers = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    slug = exc.code.rsplit(".", 1)[-1].replace("_", "-")
    return problem_response(
        status_for(exc),
        detail=exc.detail,
        code=exc.code,
        slug=slug,
        request_id=_request_id(request),
        headers=headers,
        extra=dict(exc.details),
    )


async def _http_error(request: Request, raised: Exception) -> Response:
    exc = cast(StarletteHTTPException, raised)  # registered for it only
    detail = exc.detail if isinstance(exc.detail, str) else "The request could not be completed."
    return problem_response(
        exc.status_code,
        detail=detail,
        code=f"http.{exc.status_code}",
        request_id=_request_id(request),
        headers=exc.headers,
    )


def _clean_validation_error(error: dict[str, Any]) -> dict[str, Any]:
    # Never echo the submitted value back: it may be a password.
    return {
        "loc": [str(part) for part in error.get("loc", ())],
        "msg": error.get("msg"),
        "type": error.get("type"),
    }


async def _validation_error(request: Request, raised: Exception) -> Response:
    exc = cast(RequestValidationError, raised)  # registered for it only
    problems = [_clean_validation_error(e) for e in exc.errors()[:VALIDATION_ERRORS_SHOWN]]
    malformed = any(p["type"] == "json_invalid" for p in problems)
    return problem_response(
        400 if malformed else 422,
        detail="The request body is not valid JSON."
        if malformed
        else "The request does not match the expected shape.",
        code="http.malformed_json" if malformed else "http.validation_failed",
        slug="malformed-json" if malformed else "validation-failed",
        request_id=_request_id(request),
        extra={"errors": problems},
    )


async def _database_unavailable(request: Request, raised: Exception) -> Response:
    """A lost or refused database connection: 503 with Retry-After, not a generic 500.

    OperationalError is the DBAPI's class for "the database could not do it now" (connection
    refused or cut, server shutting down, deadlock or serialization failure); DBAPIError with
    ``connection_invalidated`` is a connection that died mid-statement. Both are transient and
    say nothing about the request, so the client may retry. The driver's text names hosts and
    ports: it goes to the log for the operator, never to the client.
    """
    exc = cast(DBAPIError, raised)  # registered for DBAPIError only
    if not isinstance(exc, OperationalError) and not exc.connection_invalidated:
        raise exc  # any other database error is a bug: the generic 500 path logs it
    log.warning(
        "database.unavailable",
        error=type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
        reason=str(exc.orig if exc.orig is not None else exc)[:500],
        path=request.url.path,
    )
    return problem_response(
        503,
        detail="The database is unavailable; retry shortly.",
        code="bastion.database_unavailable",
        slug="database-unavailable",
        request_id=_request_id(request),
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    # The served document must say what these handlers send: problem+json, never plain JSON.
    install_problem_openapi(app)
