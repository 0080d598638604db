"""Properties of the one error format: RFC 9457 problem+json, from the renderer to the wire.

- ``problem_response`` turns any status, detail, code and extra members into a JSON object with
  the six stable members, which extras can never overwrite.
- Every ``AppError`` kind, with any detail and details, becomes a problem whose HTTP status is the
  kind's status and whose body repeats it; nothing else (no traceback, no 200).
- The request id echoed in ``X-Request-ID`` and in the body is the client's only when it is short
  and plain, so a hostile header can neither forge log lines nor inject headers.
- The served OpenAPI document describes every error response as problem+json.
- A lost database is a 503 with Retry-After; other database errors stay the generic 500.
"""

from __future__ import annotations

import asyncio
import json
import re
from http import HTTPStatus

import httpx
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from bastion import errors
from bastion.api.errors import install_error_handlers, status_for
from bastion.api.middleware import EdgeMiddleware
from bastion.api.openapi import document_problems
from bastion.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, problem_response

CORE_MEMBERS = ("type", "title", "status", "detail", "code", "request_id")
ERROR_STATUSES = [status for status in HTTPStatus if status >= 400]
KINDS = [
    errors.NotFound,
    errors.Conflict,
    errors.InvalidInput,
    errors.Unprocessable,
    errors.Unauthenticated,
    errors.Forbidden,
    errors.Gone,
    errors.NotImplementedYet,
    errors.Unavailable,
]
# Text a JSON encoder must cope with; lone surrogates excluded (no UTF-8 form; details are ours).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@given(
    status=st.sampled_from(ERROR_STATUSES),
    members=st.fixed_dictionaries(
        {
            "detail": TEXT,
            "code": TEXT,
            "request_id": st.none() | TEXT,
            "slug": st.none() | st.from_regex(r"[a-z][a-z-]{0,30}", fullmatch=True),
        }
    ),
    extra=st.dictionaries(st.sampled_from(CORE_MEMBERS) | TEXT, JSON, max_size=4),
)
def test_the_renderer_always_yields_the_six_members_and_extras_never_overwrite_them(
    status, members, extra
):
    response = problem_response(status, **members, extra=extra)
    detail, code, request_id = members["detail"], members["code"], members["request_id"]
    assert response.status_code == status
    assert response.media_type == PROBLEM_MEDIA_TYPE
    body = json.loads(response.body)
    assert body["status"] == status
    assert (body["detail"], body["code"], body["request_id"]) == (detail, code, request_id)
    assert body["title"] == HTTPStatus(status).phrase
    assert re.fullmatch(re.escape(PROBLEM_TYPE_BASE) + r"[a-z0-9-]+", body["type"])
    for name, value in extra.items():
        if name not in CORE_MEMBERS:
            assert body[name] == value


def _app(raised: errors.AppError) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise raised

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(EdgeMiddleware, max_body_bytes=2048, trusted_proxies=(), hsts_max_age=60)
    return app


def _get(app: FastAPI, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            return await client.get(path)

    return asyncio.run(call())


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    detail=st.none() | TEXT,
    # Keys are identifiers in practice (details=**kwargs), values any JSON.
    details=st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), JSON, max_size=3),
)
def test_every_app_error_becomes_a_problem_with_its_kinds_status(kind, detail, details):
    response = _get(_app(kind(detail, **details)), "/fail")
    expected = status_for(kind())
    assert 400 <= expected < 600
    assert response.status_code == expected
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["status"] == expected
    assert body["code"] == kind.code
    assert body["detail"] == (detail or kind.public_message)
    assert body["request_id"] == response.headers["x-request-id"]


def _raw_request_id_round_trip(incoming: bytes) -> bytes:
    """Send ``incoming`` as X-Request-ID straight through ASGI (no HTTP parser to clean it up)."""
    app = _app(errors.NotFound())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/ok",
        "raw_path": b"/ok",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"x-request-id", incoming)],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 443),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return dict(start["headers"])[b"x-request-id"]


@settings(max_examples=80, deadline=None)
@given(
    incoming=st.one_of(
        st.binary(max_size=80),
        # Near misses: a plain id with one hostile byte (CR, LF, NUL, space, quote) appended.
        st.tuples(
            st.from_regex(rb"[A-Za-z0-9]{8,20}", fullmatch=True), st.sampled_from(b'\r\n\x00 "')
        ).map(lambda pair: pair[0] + bytes([pair[1]])),
    )
)
def test_a_request_id_is_echoed_only_when_short_and_plain(incoming):
    echoed = _raw_request_id_round_trip(incoming)
    assert re.fullmatch(rb"[A-Za-z0-9._:-]{8,64}", echoed), echoed
    if re.fullmatch(rb"[A-Za-z0-9._:-]{8,64}", incoming):
        assert echoed == incoming
    else:
        assert echoed != incoming


@given(
    responses=st.dictionaries(
        st.sampled_from(["200", "201", "204", "400", "401", "403", "404", "409", "422", "503"]),
        st.just({"description": "x", "content": {"application/json": {"schema": {}}}}),
        min_size=1,
    ),
    has_body=st.booleans(),
    has_parameters=st.booleans(),
)
def test_the_openapi_rewrite_makes_every_error_response_problem_json(
    responses, has_body, has_parameters
):
    operation: dict = {"responses": json.loads(json.dumps(responses))}
    if has_body:
        operation["requestBody"] = {"content": {"application/json": {"schema": {}}}}
    if has_parameters:
        operation["parameters"] = [{"name": "q", "in": "query", "schema": {"type": "string"}}]
    document = {"paths": {"/x": {"post": operation}}, "components": {"schemas": {}}}
    document_problems(document)
    rewritten = document["paths"]["/x"]["post"]["responses"]
    for status, response in rewritten.items():
        if status[0] in "45":
            assert list(response["content"]) == [PROBLEM_MEDIA_TYPE]
        else:
            assert response == responses[status]
    assert "500" in rewritten
    assert ("413" in rewritten) == has_body or "413" in responses
    assert ("422" in rewritten) == (has_body or has_parameters) or "422" in responses
    assert "Problem" in document["components"]["schemas"]


@given(
    kind=st.sampled_from(["operational", "invalidated", "integrity"]),
    # Driver text names hosts and ports; a marked string shows whether any of it leaked.
    message=st.text(alphabet="xyz0123456789", min_size=8, max_size=20).map("host-{}".format),
)
@settings(max_examples=20, deadline=None)
def test_a_lost_database_is_503_with_retry_after_and_other_database_errors_stay_500(kind, message):
    if kind == "operational":
        raised: Exception = OperationalError("SELECT 1", {}, Exception(message))
    elif kind == "invalidated":
        raised = DBAPIError("SELECT 1", {}, Exception(message), connection_invalidated=True)
    else:
        raised = IntegrityError("INSERT", {}, Exception(message))
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/db")
    async def db() -> None:
        raise raised

    app.add_middleware(EdgeMiddleware, max_body_bytes=2048, trusted_proxies=(), hsts_max_age=60)
    response = _get(app, "/db")
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    if kind == "integrity":  # a bug, not an outage: the generic 500, logged with its traceback
        assert response.status_code == 500
        assert "retry-after" not in response.headers
    else:
        assert response.status_code == 503
        assert response.json()["code"] == "bastion.database_unavailable"
        assert response.headers["retry-after"].isdigit()
    assert message not in response.text  # the driver's text stays in the log
