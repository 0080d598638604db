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

from tests.support.server import ServerProcess

# argon2 at its floor: the fuzz run logs in once per case, and hashing cost is not under test here.
CHEAP_ARGON2_ENV = {
    "BASTION_IDENTITY__ARGON2_MEMORY_KIB": "64",
    "BASTION_IDENTITY__ARGON2_TIME_COST": "1",
}
OPENAPI_PATH = "/api/openapi.json"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: generated requests against the live OpenAPI schema")


SIGNUP_PATH = "/api/v1/auth/signup"
LOGIN_PATH = "/api/v1/auth/login"


@dataclass
class FuzzAccount:
    """A real account on the fuzzed server, or none while the server has no sign-up yet.

    Without identity (``/api/v1/auth/signup`` absent from the document) the public surface is
    fuzzed unauthenticated, and the run says so.
    """

    server: ServerProcess
    email: str | None
    password: str

    def fresh_token(self) -> str | None:
        if self.email is None:
            return None
        # A new session per case: fuzzed logout, "revoke all sessions" or a password change must
        # not leave every later case unauthenticated (they would all stop at 401).
        response = self.server.client.post(
            LOGIN_PATH, json={"email": self.email, "password": self.password}
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"fuzz account cannot log in: {response.status_code} {response.text}"
            )
        return str(response.json()["token"])

    def auth_headers(self) -> dict[str, str]:
        token = self.fresh_token()
        return {"Authorization": f"Bearer {token}"} if token else {}


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
    account.fresh_token()  # fail here, clearly, rather than in every fuzz case
    return account


def load_live_schema(server: ServerProcess) -> BaseSchema:
    """The served OpenAPI document as a schemathesis schema aimed at ``server`` over TLS."""
    cert = str(server.cert_file)
    schema = schemathesis.openapi.from_url(server.base_url + OPENAPI_PATH, verify=cert, timeout=10)
    schema.config.update(base_url=server.base_url, tls_verify=cert, request_timeout=10)
    # "Schema-valid request rejected" assumes a well-shaped request must succeed. Here a
    # well-shaped token can be unknown (400), a password can fail the strength policy (422,
    # Unprocessable) and an e-mail can be malformed past what JSON Schema says: refusals the
    # schema cannot express. Negative data must still be rejected, and nothing may be a 5xx.
    schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])
    return schema
