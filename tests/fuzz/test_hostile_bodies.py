"""Hand-made hostile JSON the generator never produces, sent to every JSON-body operation.

Schemathesis draws valid Unicode and well-formed JSON. Clients are not so kind: lone surrogates
(``"\\ud800"`` is legal JSON text but not Unicode), NUL, numbers past any float, nesting past the
recursion limit, duplicate keys, a body that is not an object. For every operation with a JSON body
in the served OpenAPI document, each hostile value is put in each documented string field in turn;
the answer must be a clear 4xx (or a success) and never a 5xx, and errors are problem+json.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.fuzz.conftest import FUZZ_COLLECTION, FUZZ_TENANT, OPENAPI_PATH, FuzzAccount

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

# Raw JSON fragments, spliced in as a field's value.
HOSTILE_VALUES = {
    "lone high surrogate": '"\\ud800"',
    "lone low surrogate": '"x\\udfffy"',
    "NUL": '"a\\u0000b"',
    "C1 control and bidi override": '"\\u0085\\u202e"',
    "huge integer": "9" * 5000,
    "float overflow": "1e999",
    "deep array": "[" * 3000 + "]" * 3000,
    "object": '{"$ne": null}',
    "long string": '"' + "A" * 60_000 + '"',
}
# Whole bodies that are not the documented object at all.
HOSTILE_BODIES = {
    "not JSON": b"\xff\xfe{",
    "array": b"[]",
    "null": b"null",
    "truncated": b'{"email": "a@example.com", ',
    # Not here: a UTF-8 byte-order mark before a valid object, which json.loads skips and
    # RFC 8259 section 8.1 allows a parser to ignore.
}


def _fill(path: str, account: FuzzAccount) -> str | None:
    """``path`` aimed at the account's own tenant and collection, or None if it names others."""
    values = {"tenant": FUZZ_TENANT, "name": FUZZ_COLLECTION, "record_id": account.record_id}
    names = re.findall(r"\{([^}]+)\}", path)
    if any(values.get(name) is None for name in names):
        return None  # another object's id: a random one stops at 404 before the body is read
    return re.sub(r"\{([^}]+)\}", lambda m: str(values[m.group(1)]), path)


def _json_body_operations(document, account: FuzzAccount):
    for template_path, item in document["paths"].items():
        path = _fill(template_path, account)
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content and path is not None:
                schema = content["application/json"]["schema"]
                if "$ref" in schema:
                    name = schema["$ref"].rsplit("/", 1)[-1]
                    schema = document["components"]["schemas"][name]
                yield method.upper(), path, schema


def _template(schema) -> dict[str, str]:
    """A plausible body: every documented property as a harmless string."""
    return dict.fromkeys(schema.get("properties", {}), "a@example.com")


def _assert_clean(response, what):
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", what
        assert json.loads(response.content)["status"] == response.status_code, what


def test_hostile_values_in_every_string_field_never_cause_a_5xx(fuzz_account: FuzzAccount):
    client = fuzz_account.server.client
    document = client.get(OPENAPI_PATH).json()
    sent = 0
    for method, path, schema in _json_body_operations(document, fuzz_account):
        template = _template(schema)
        for field in template:
            for label, fragment in HOSTILE_VALUES.items():
                others = {k: v for k, v in template.items() if k != field}
                body = json.dumps(others)[:-1] + (", " if others else "")
                body += f"{json.dumps(field)}: {fragment}}}"
                headers = {"content-type": "application/json", **fuzz_account.auth_headers()}
                response = client.request(method, path, content=body.encode(), headers=headers)
                fuzz_account.answered(method, path, response.status_code)
                _assert_clean(response, f"{method} {path} {field}={label}")
                sent += 1
    assert sent >= 50, sent  # the document really listed JSON-body operations


def test_bodies_that_are_not_the_documented_object_are_refused_cleanly(
    fuzz_account: FuzzAccount,
):
    client = fuzz_account.server.client
    document = client.get(OPENAPI_PATH).json()
    operations = list(_json_body_operations(document, fuzz_account))
    assert operations
    for method, path, _ in operations:
        for label, body in HOSTILE_BODIES.items():
            headers = {"content-type": "application/json", **fuzz_account.auth_headers()}
            response = client.request(method, path, content=body, headers=headers)
            fuzz_account.answered(method, path, response.status_code)
            _assert_clean(response, f"{method} {path} {label}")
            assert response.status_code in (400, 401, 403, 422), (label, response.status_code)
