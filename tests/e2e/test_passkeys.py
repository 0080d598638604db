"""Passkeys and operator revocation over real TLS against a real `bastion serve`, driven by the
software authenticator: what a browser and an operator's console see."""

import re

import pytest

from tests.support import server as server_support
from tests.support.authenticator import SoftAuthenticator
from tests.support.http import bearer as _bearer
from tests.support.http import problem as _problem
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess, run_cli

PASSWORD = "correct horse battery staple"
OPERATOR = "root@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("passkeys") / "data", env=CHEAP_ARGON2_ENV)
    process.env["BASTION_IDENTITY__WEBAUTHN_RP_ID"] = "localhost"
    process.env["BASTION_IDENTITY__WEBAUTHN_ORIGIN"] = f"https://localhost:{process.port}"
    process.init()
    # Start-up imports take far longer than usual on a loaded shared machine.
    default_timeout = server_support.STARTUP_TIMEOUT_SECONDS
    server_support.STARTUP_TIMEOUT_SECONDS = 90
    try:
        process.start()
        yield process
    finally:
        server_support.STARTUP_TIMEOUT_SECONDS = default_timeout
        process.stop()


def _login(server, email):
    return server.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})


def _register(server, token, authenticator, name="Laptop"):
    options = server.client.post("/api/v1/me/passkeys/options", headers=_bearer(token))
    assert options.status_code == 200, options.text
    assert options.json()["rp"]["id"] == "localhost"
    return server.client.post(
        "/api/v1/me/passkeys",
        json={"name": name, "credential": authenticator.create(options.json())},
        headers=_bearer(token),
    )


@pytest.fixture(scope="module")
def operator(server):
    """The first operator, enrolled with a passkey: (authenticator, session token)."""
    (link,) = re.findall(r"/bootstrap\?token=([A-Za-z0-9_-]+)", server.output())
    created = server.client.post(
        "/api/v1/bootstrap", json={"token": link, "email": OPERATOR, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    token = _login(server, OPERATOR).json()["token"]
    authenticator = SoftAuthenticator(origin=f"https://localhost:{server.port}")
    registered = _register(server, token, authenticator)
    assert registered.status_code == 201, registered.text
    return authenticator, token


def test_a_passkey_is_the_second_factor_of_a_password_login(server, operator):
    authenticator, _ = operator
    required = _problem(_login(server, OPERATOR), 401, "identity.mfa_required")
    assert required["factors"] == ["passkey"]
    options = server.client.post(
        "/api/v1/auth/mfa/passkey/options", json={"mfa_token": required["mfa_token"]}
    )
    assert options.status_code == 200, options.text
    assertion = authenticator.get(options.json())
    done = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": required["mfa_token"], "passkey": assertion}
    )
    assert done.status_code == 200, done.text
    me = server.client.get("/api/v1/me", headers=_bearer(done.json()["token"])).json()
    assert (me["is_operator"], me["mfa_enabled"]) == (True, True)
    # The very same assertion, replayed into a fresh login, is refused.
    again = _problem(_login(server, OPERATOR), 401, "identity.mfa_required")
    server.client.post("/api/v1/auth/mfa/passkey/options", json={"mfa_token": again["mfa_token"]})
    replay = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": again["mfa_token"], "passkey": assertion}
    )
    _problem(replay, 401, "identity.mfa_code_invalid")


def test_a_registration_from_another_origin_is_refused(server, operator):
    _, token = operator
    evil = SoftAuthenticator(origin="https://evil.example.com")
    _problem(_register(server, token, evil), 400, "identity.passkey_invalid")
    listed = server.client.get("/api/v1/me/passkeys", headers=_bearer(token)).json()["items"]
    assert [p["name"] for p in listed] == ["Laptop"]


def test_bad_passkey_bodies_are_refused_without_changing_anything(server, operator):
    _, token = operator
    for body in (
        {"name": "x", "credential": {"id": "a" * 70_000}},
        {"name": "bad\nname", "credential": {}},
        {"name": "x", "credential": {}, "extra": 1},
        {"name": "x", "credential": {"id": "AAAA", "response": {}}},
    ):
        response = server.client.post("/api/v1/me/passkeys", json=body, headers=_bearer(token))
        assert response.status_code in (400, 422), response.text
    both = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": "x" * 43, "code": "123456", "passkey": {}}
    )
    assert both.status_code == 422
    listed = server.client.get("/api/v1/me/passkeys", headers=_bearer(token)).json()["items"]
    assert len(listed) == 1


def test_passwordless_login_with_a_passkey(server, operator):
    authenticator, _ = operator
    options = server.client.post("/api/v1/auth/passkey/options")
    assert options.status_code == 200, options.text
    assert options.json()["userVerification"] == "required"
    signed_in = server.client.post(
        "/api/v1/auth/passkey", json={"credential": authenticator.get(options.json())}
    )
    assert signed_in.status_code == 200, signed_in.text
    me = server.client.get("/api/v1/me", headers=_bearer(signed_in.json()["token"]))
    assert me.json()["email"] == OPERATOR


def test_an_operator_ends_a_users_sessions_and_they_fail_on_the_next_request(server, operator):
    _, operator_token = operator
    email = "victim@example.com"
    signup = server.client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    tokens = [_login(server, email).json()["token"] for _ in range(2)]
    # Only operators may; a plain user is refused.
    _problem(
        server.client.post(
            f"/api/v1/operator/users/{signup.json()['id']}/sessions/revoke",
            headers=_bearer(tokens[0]),
        ),
        403,
        "access.operator_only",
    )
    _problem(
        server.client.post(
            "/api/v1/operator/users/00000000-0000-4000-8000-000000000000/sessions/revoke",
            headers=_bearer(operator_token),
        ),
        404,
        "identity.user_not_found",
    )
    # An address in the path is refused by shape: paths are logged, addresses never are.
    by_address = server.client.post(
        f"/api/v1/operator/users/{email}/sessions/revoke", headers=_bearer(operator_token)
    )
    assert by_address.status_code == 422
    revoked = server.client.post(
        f"/api/v1/operator/users/{signup.json()['id']}/sessions/revoke",
        headers=_bearer(operator_token),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["sessions_revoked"] == 2
    for token in tokens:
        _problem(
            server.client.get("/api/v1/me", headers=_bearer(token)),
            401,
            "identity.not_authenticated",
        )
    # The same from the command line, by e-mail address.
    again = _login(server, email).json()["token"]
    result = run_cli("users", "revoke-sessions", email.upper(), env=server.env)
    assert result.returncode == 0, result.stderr
    assert "revoked 1 session(s)" in result.stdout
    _problem(
        server.client.get("/api/v1/me", headers=_bearer(again)), 401, "identity.not_authenticated"
    )
