"""The served OpenAPI document tells the truth about errors: every one is problem+json.

FastAPI documents error responses as ``application/json`` (its own 422 with ``HTTPValidationError``,
and each route's ``responses=``), while Bastion answers every error as an RFC 9457
``application/problem+json`` body (``api/errors.py``, the edge middleware). The API fuzz suite
(tests/fuzz) caught the mismatch. This rewrites the generated document so that:

- every 4xx/5xx response is ``application/problem+json`` with the ``Problem`` schema;
- operations with a body also document 400 (malformed JSON, or input a service refuses), 413
  (over the body limit) and 422 (wrong shape); operations with parameters document 422;
- every operation documents the generic 500 the edge answers for an unexpected exception, and
  the 503 it answers while the database is unreachable.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bastion.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "description": "RFC 9457 problem details. More members may be present (e.g. errors, checks).",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "Stable URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine code, <domain>.<reason>."},
        "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "additionalProperties": True,
}
# FastAPI's own validation-error schemas, unused once every 422 points at Problem.
FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})

BODY_ERRORS = {
    "400": "Malformed JSON, or input the service refuses.",
    "413": "The request body exceeds the configured limit.",
    "422": "The request does not match the documented shape.",
}
PARAMETER_ERRORS = {"422": "A parameter does not match the documented shape."}
SERVER_ERROR = {
    "500": "Unexpected error: a generic problem carrying the request id.",
    "503": "A dependency (the database) is unavailable; retry after Retry-After seconds.",
}


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the rewritten document (regenerated with the routes)."""
    rewritten: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = FastAPI.openapi(app)
        # FastAPI caches the document and rebuilds it when routes change; rewrite each build once.
        if not rewritten or rewritten[0] is not document:
            document_problems(document)
            rewritten[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(document: dict[str, Any]) -> None:
    """Rewrite ``document`` in place as described in the module docstring."""
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in HTTP_METHODS:
                _document_operation(operation)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    for name in FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)


def _document_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    generic = dict(SERVER_ERROR)
    if operation.get("parameters"):
        generic.update(PARAMETER_ERRORS)
    if "requestBody" in operation:
        generic.update(BODY_ERRORS)
    for status, description in generic.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status[:1] in ("4", "5"):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
