"""Every operation in the served OpenAPI document needs a valid credential, unless it is listed
here as public. A new route is therefore protected by default in the eyes of this test: making
one public means adding it below, in review.

For each protected operation: no credential, a malformed Authorization header, an unknown bearer
token and an unknown session cookie must each answer 401 problem+json, whatever the body or
parameters (authentication is decided before the input is looked at).
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.fuzz.conftest import OPENAPI_PATH, FuzzAccount

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

PUBLIC_OPERATIONS = {
    "GET /healthz",
    "GET /readyz",
    # The first-operator link: the single-use token is the credential.
    "GET /bootstrap",
    "POST /api/v1/bootstrap",
    # Getting a session, or getting back into an account: the body is the credential.
    "POST /api/v1/auth/signup",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/mfa",
    "POST /api/v1/auth/email/verify",
    "POST /api/v1/auth/password/forgot",
    "POST /api/v1/auth/password/reset",
    # Passkeys: the mfa_token, or the signed assertion itself, is the credential; options only
    # hand out a single-use challenge.
    "POST /api/v1/auth/mfa/passkey/options",
    "POST /api/v1/auth/passkey/options",
    "POST /api/v1/auth/passkey",
    # Detection's e-mailed links: the single-use token in the body is the credential.
    "POST /api/v1/auth/unlock",
    "POST /api/v1/auth/report-login",
}
WRONG_CREDENTIALS = {
    "none": {},
    "not bearer": {"Authorization": "Basic Zm9vOmJhcg=="},
    "bearer without a token": {"Authorization": "Bearer"},
    "unknown bearer": {"Authorization": "Bearer " + "A" * 43},
    "unknown cookie": {"Cookie": "__Host-bastion_session=" + "A" * 43},
}


def _operations(document):
    for path, item in document["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method.upper(), path


def test_every_operation_not_listed_as_public_refuses_missing_or_wrong_credentials(
    fuzz_account: FuzzAccount,
):
    server = fuzz_account.server
    document = server.client.get(OPENAPI_PATH).json()
    operations = set(_operations(document))
    labels = {f"{method} {path}" for method, path in operations}
    assert labels >= PUBLIC_OPERATIONS, f"public but gone: {PUBLIC_OPERATIONS - labels}"
    protected = sorted(op for op in operations if f"{op[0]} {op[1]}" not in PUBLIC_OPERATIONS)
    if fuzz_account.email is None:
        pytest.skip("no identity routes yet: nothing is protected")
    assert protected
    # A client of its own: the shared one holds the fuzz account's session cookie from login.
    with httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=10) as client:
        for method, path in protected:
            _assert_all_refused(client, method, path)


def _assert_all_refused(client: httpx.Client, method: str, path: str) -> None:
    # Path parameters get a well-shaped value; the body is empty JSON.
    url = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)
    for label, headers in WRONG_CREDENTIALS.items():
        client.cookies.clear()
        response = client.request(method, url, json={}, headers=headers)
        what = f"{method} {path} with {label}"
        assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/problem+json", what
