"""A live server to fuzz, one real account on it, and its OpenAPI document loaded by schemathesis.

The schema is read from the running server (not from ``create_app``), so what is fuzzed is what a
client sees: the document served at ``/api/openapi.json``, over TLS, behind the real edge.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from schemathesis import BaseSchema

from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess

OPENAPI_PATH = "/api/openapi.json"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: generated requests against the live OpenAPI schema")


SIGNUP_PATH = "/api/v1/auth/signup"
LOGIN_PATH = "/api/v1/auth/login"
TENANTS_PATH = "/api/v1/tenants"
# Successful unsafe calls under these may end the fuzz account's session.
SESSION_CHANGING_PREFIXES = ("/api/v1/auth/", "/api/v1/me")
# The fuzz account's own tenant, collection and one record: tenant routes fuzzed with random
# path values stop at 404 before the input is read, so the fuzzer aims at these (test_openapi_fuzz).
FUZZ_TENANT = "fuzz-tenant"
FUZZ_COLLECTION = "things"
FUZZ_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string", "maxLength": 200}, "n": {"type": "integer"}},
}


@dataclass
class FuzzAccount:
    """A real account on the fuzzed server, or none while the server has no sign-up yet.

    Without identity (``/api/v1/auth/signup`` absent from the document) the public surface is
    fuzzed unauthenticated, and the run says so.
    """

    server: ServerProcess
    email: str | None
    password: str
    record_id: str | None = None
    _token: str | None = None

    def fresh_token(self) -> str | None:
        if self.email is None:
            return None
        response = self.server.client.post(
            LOGIN_PATH, json={"email": self.email, "password": self.password}
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"fuzz account cannot log in: {response.status_code} {response.text}"
            )
        return str(response.json()["token"])

    def auth_headers(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.fresh_token()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def answered(self, method: str, path: str, status: int) -> None:
        """Drop the session after anything that may have ended it.

        A fuzzed logout, "revoke all sessions" or a password change must not leave every later
        case unauthenticated (they would all stop at 401); a login per case instead doubled the
        run's requests.
        """
        may_end_session = method != "GET" and path.startswith(SESSION_CHANGING_PREFIXES)
        if status == 401 or (may_end_session and status < 300):
            self._token = None

    @property
    def collection_path(self) -> str:
        return f"{TENANTS_PATH}/{FUZZ_TENANT}/collections/{FUZZ_COLLECTION}"

    def ensure_collection(self) -> None:
        """(Re)create the fuzz collection and one record in it, e.g. after a fuzzed DELETE."""
        headers = self.auth_headers()
        client = self.server.client
        if client.get(self.collection_path, headers=headers).status_code == 404:
            created = client.post(
                f"{TENANTS_PATH}/{FUZZ_TENANT}/collections",
                json={"name": FUZZ_COLLECTION, "schema": FUZZ_SCHEMA, "indexed": ["title"]},
                headers=headers,
                # The first schema a process compiles imports jsonschema (slow on a busy machine).
                timeout=60,
            )
            assert created.status_code == 201, created.text
        self.ensure_record()

    def ensure_record(self) -> None:
        record = self.server.client.post(
            f"{self.collection_path}/records",
            json={"title": "fuzz", "n": 1},
            headers=self.auth_headers(),
        )
        assert record.status_code == 201, record.text
        self.record_id = str(record.json()["id"])


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", env=CHEAP_ARGON2_ENV)
    process.init()
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def fuzz_account(fuzz_server: ServerProcess) -> FuzzAccount:
    paths = fuzz_server.client.get(OPENAPI_PATH).json()["paths"]
    if SIGNUP_PATH not in paths:
        return FuzzAccount(server=fuzz_server, email=None, password="")
    account = FuzzAccount(
        server=fuzz_server,
        email=f"fuzz-{secrets.token_hex(4)}@example.com",
        # Long and random: passes the strength policy, and no fuzzed input will ever guess it.
        password=secrets.token_urlsafe(24),
    )
    created = fuzz_server.client.post(
        SIGNUP_PATH, json={"email": account.email, "password": account.password}
    )
    assert created.status_code == 201, created.text
    headers = account.auth_headers()  # fail here, clearly, rather than in every fuzz case
    if TENANTS_PATH in paths:
        tenant = fuzz_server.client.post(
            TENANTS_PATH, json={"name": "Fuzz", "slug": FUZZ_TENANT}, headers=headers
        )
        assert tenant.status_code == 201, tenant.text
        account.ensure_collection()
    return account


def load_live_schema(server: ServerProcess) -> BaseSchema:
    """The served OpenAPI document as a schemathesis schema aimed at ``server`` over TLS."""
    cert = str(server.cert_file)
    schema = schemathesis.openapi.from_url(server.base_url + OPENAPI_PATH, verify=cert, timeout=10)
    # 30 s: answers take seconds on the shared 2-CPU machine; a hung worker still fails the case.
    schema.config.update(base_url=server.base_url, tls_verify=cert, request_timeout=30)
    # "Schema-valid request rejected" assumes a well-shaped request must succeed. Here a
    # well-shaped token can be unknown (400), a password can fail the strength policy (422,
    # Unprocessable) and an e-mail can be malformed past what JSON Schema says: refusals the
    # schema cannot express. Negative data must still be rejected, and nothing may be a 5xx.
    schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])
    return schema
