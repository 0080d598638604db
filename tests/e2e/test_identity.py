"""Identity over real TLS against a real `bastion serve`: the flows a client sees."""

import time

import httpx
import pytest

from tests.support.http import bearer as _bearer
from tests.support.identity import CHEAP_ARGON2_ENV, last_token, read_mails
from tests.support.server import ServerProcess, run_cli

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a completely different passphrase"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("identity") / "data", env=CHEAP_ARGON2_ENV)
    process.init()
    process.start()
    yield process
    process.stop()


def _client(server):
    """A fresh client (own cookie jar) trusting the server's certificate."""
    return httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=10)


def _signup(server, email, password=PASSWORD, name=None):
    body = {"email": email, "password": password, **({"name": name} if name else {})}
    response = server.client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _login(server, email, password=PASSWORD, client=None):
    response = (client or server.client).post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _assert_problem(response, status, code=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    if code is not None:
        assert body["code"] == code
    return body


def test_signup_verify_login_me_logout_and_the_token_is_dead(server):
    created = _signup(server, "Walter.White@Example.COM", name="Walter")
    assert created["email"] == "Walter.White@example.com"
    token = last_token(
        server.data_dir / "mail", to="walter.white@example.com", subject_contains="Confirm"
    )
    verified = server.client.post("/api/v1/auth/email/verify", json={"token": token})
    assert verified.status_code == 204, verified.text
    replay = server.client.post("/api/v1/auth/email/verify", json={"token": token})
    _assert_problem(replay, 400, "identity.token_invalid")

    session = _login(server, "walter.white@EXAMPLE.com")
    assert set(session) >= {"token", "expires_at", "csrf_token"}
    me = server.client.get("/api/v1/me", headers=_bearer(session["token"]))
    assert me.status_code == 200
    assert me.json() == {
        **me.json(),
        "id": created["id"],
        "email": "Walter.White@example.com",
        "email_verified": True,
        "is_operator": False,
    }
    logout = server.client.post("/api/v1/auth/logout", headers=_bearer(session["token"]))
    assert logout.status_code == 204
    after = server.client.get("/api/v1/me", headers=_bearer(session["token"]))
    _assert_problem(after, 401, "identity.not_authenticated")


def test_login_sets_a_host_prefixed_httponly_secure_lax_cookie(server):
    _signup(server, "cookie@example.com")
    response = server.client.post(
        "/api/v1/auth/login", json={"email": "cookie@example.com", "password": PASSWORD}
    )
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("__Host-bastion_session="))
    attributes = {part.strip().lower() for part in session_cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert response.json()["token"] in session_cookie
    csrf_cookie = next(c for c in cookies if c.startswith("__Host-bastion_csrf="))
    assert "httponly" not in csrf_cookie.lower()


def test_a_cookie_authenticated_post_needs_the_csrf_header(server):
    _signup(server, "csrf@example.com")
    with _client(server) as browser:
        session = _login(server, "csrf@example.com", client=browser)
        assert browser.get("/api/v1/me").status_code == 200  # safe method: the cookie suffices
        refused = browser.post("/api/v1/auth/logout")
        _assert_problem(refused, 403, "identity.csrf_failed")
        forged = browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "A" * 43})
        _assert_problem(forged, 403, "identity.csrf_failed")
        assert browser.get("/api/v1/me").status_code == 200  # nothing happened
        done = browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": session["csrf_token"]})
        assert done.status_code == 204
    # A bearer token needs no CSRF proof: browsers never attach one by themselves.
    other = _login(server, "csrf@example.com")
    assert (
        server.client.post("/api/v1/auth/logout", headers=_bearer(other["token"])).status_code
        == 204
    )


def test_a_cross_site_login_attempt_is_refused(server):
    response = server.client.post(
        "/api/v1/auth/login",
        json={"email": "csrf@example.com", "password": PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    _assert_problem(response, 403, "identity.csrf_failed")


def test_unknown_email_and_wrong_password_answer_identically(server):
    _signup(server, "enum@example.com")

    def attempt(email, password):
        started = time.perf_counter()
        response = server.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        return response, time.perf_counter() - started

    timings = {"unknown": [], "wrong": []}
    for _ in range(5):
        unknown, t_unknown = attempt("nobody-here@example.com", PASSWORD)
        wrong, t_wrong = attempt("enum@example.com", "not " + PASSWORD)
        timings["unknown"].append(t_unknown)
        timings["wrong"].append(t_wrong)
        for response in (unknown, wrong):
            _assert_problem(response, 401, "identity.invalid_credentials")
        strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
        assert strip(unknown) == strip(wrong)
        assert unknown.headers.keys() == wrong.headers.keys()
        assert "set-cookie" not in unknown.headers
    # Same work on both paths (a dummy argon2 verify): medians within a generous factor.
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ratio = median(timings["unknown"]) / median(timings["wrong"])
    assert 0.33 < ratio < 3, timings


def test_forgot_password_answers_the_same_for_unknown_addresses(server):
    _signup(server, "forgetful@example.com")
    known = server.client.post(
        "/api/v1/auth/password/forgot", json={"email": "forgetful@example.com"}
    )
    unknown = server.client.post(
        "/api/v1/auth/password/forgot", json={"email": "ghost@example.com"}
    )
    malformed = server.client.post("/api/v1/auth/password/forgot", json={"email": "not-an-address"})
    assert known.status_code == unknown.status_code == malformed.status_code == 202
    assert known.json() == unknown.json() == malformed.json()
    # The known address's link is delivered (after the request); none goes to the unknown one.
    last_token(server.data_dir / "mail", to="forgetful@example.com", subject_contains="Reset")
    subjects = [(m["To"], m["Subject"]) for m in read_mails(server.data_dir / "mail")]
    assert not [s for s in subjects if "ghost" in s[0]]


def test_a_password_reset_kills_every_session_before_it_returns(server):
    _signup(server, "reset@example.com")
    tokens = [_login(server, "reset@example.com")["token"] for _ in range(3)]
    server.client.post("/api/v1/auth/password/forgot", json={"email": "reset@example.com"})
    reset = last_token(server.data_dir / "mail", to="reset@example.com", subject_contains="Reset")
    done = server.client.post(
        "/api/v1/auth/password/reset", json={"token": reset, "password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
    for token in tokens:
        _assert_problem(server.client.get("/api/v1/me", headers=_bearer(token)), 401)
    again = server.client.post(
        "/api/v1/auth/password/reset", json={"token": reset, "password": "yet another passphrase"}
    )
    _assert_problem(again, 400, "identity.token_invalid")
    _assert_problem(
        server.client.post(
            "/api/v1/auth/login", json={"email": "reset@example.com", "password": PASSWORD}
        ),
        401,
    )
    _login(server, "reset@example.com", NEW_PASSWORD)


def test_a_revoked_session_fails_on_the_very_next_request(server):
    _signup(server, "revoke@example.com")
    phone = _login(server, "revoke@example.com")
    laptop = _login(server, "revoke@example.com")
    listed = server.client.get("/api/v1/me/sessions", headers=_bearer(laptop["token"])).json()
    assert len(listed["items"]) == 2
    assert {s["ip"] for s in listed["items"]} == {"127.0.0.1"}
    phone_id = next(s["id"] for s in listed["items"] if not s["current"])
    revoked = server.client.delete(
        f"/api/v1/me/sessions/{phone_id}", headers=_bearer(laptop["token"])
    )
    assert revoked.status_code == 204
    _assert_problem(server.client.get("/api/v1/me", headers=_bearer(phone["token"])), 401)
    assert server.client.get("/api/v1/me", headers=_bearer(laptop["token"])).status_code == 200
    everything = server.client.delete("/api/v1/me/sessions", headers=_bearer(laptop["token"]))
    assert everything.status_code == 204
    _assert_problem(server.client.get("/api/v1/me", headers=_bearer(laptop["token"])), 401)


def test_password_change_needs_the_current_password_and_rotates_the_session(server):
    _signup(server, "change@example.com")
    old = _login(server, "change@example.com")
    wrong = server.client.post(
        "/api/v1/me/password",
        json={"current_password": "wrong", "new_password": NEW_PASSWORD},
        headers=_bearer(old["token"]),
    )
    _assert_problem(wrong, 400, "identity.current_password_wrong")
    common = server.client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "password1234"},
        headers=_bearer(old["token"]),
    )
    assert _assert_problem(common, 422, "identity.password_too_common")["rule"] == "common"
    changed = server.client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(old["token"]),
    )
    assert changed.status_code == 200, changed.text
    _assert_problem(server.client.get("/api/v1/me", headers=_bearer(old["token"])), 401)
    assert (
        server.client.get("/api/v1/me", headers=_bearer(changed.json()["token"])).status_code == 200
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"email": "bad@example.com", "password": ', 400),  # malformed JSON
        ({"email": "bad@example.com", "password": "x" * 2000}, 422),  # oversized field
        ({"email": "bad@example.com", "password": PASSWORD, "is_operator": True}, 422),
        ({"email": "bad@example.com\r\nBcc: evil@example.net", "password": PASSWORD}, 422),
        ({"email": "bad@example.com", "password": PASSWORD, "name": "x" * 201}, 422),
        ({"email": "bad@example.com", "password": 12345678901234}, 422),
        ({"email": "bad@example.com", "password": "Bastion2025!!"}, 422),  # policy: context
    ],
)
def test_bad_signup_input_is_a_4xx_problem_and_writes_nothing(server, body, status):
    before = len(read_mails(server.data_dir / "mail"))
    if isinstance(body, str):
        response = server.client.post(
            "/api/v1/auth/signup", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = server.client.post("/api/v1/auth/signup", json=body)
    problem = _assert_problem(response, status)
    assert "x" * 100 not in response.text
    assert len(read_mails(server.data_dir / "mail")) == before
    assert problem.get("errors") or problem.get("rule")
    # Nothing was created: the address is still free.
    _signup(server, f"free-{abs(hash(str(body)))}@example.com")
    login = server.client.post(
        "/api/v1/auth/login", json={"email": "bad@example.com", "password": PASSWORD}
    )
    _assert_problem(login, 401)


def test_an_oversized_body_is_refused_before_any_work(server):
    response = server.client.post(
        "/api/v1/auth/login",
        content=b'{"email":"a@example.com","password":"' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    _assert_problem(response, 413)


def test_the_cli_disables_an_account_and_its_sessions_end(server):
    _signup(server, "disable-me@example.com")
    token = _login(server, "disable-me@example.com")["token"]
    result = run_cli("users", "disable", "DISABLE-ME@example.com", env=server.env)
    assert result.returncode == 0, result.stderr
    _assert_problem(server.client.get("/api/v1/me", headers=_bearer(token)), 401)
    refused = server.client.post(
        "/api/v1/auth/login", json={"email": "disable-me@example.com", "password": PASSWORD}
    )
    _assert_problem(refused, 401, "identity.invalid_credentials")
    unknown = run_cli("users", "disable", "nobody@example.com", env=server.env)
    assert unknown.returncode == 1
    assert "No such user" in unknown.stderr


def test_an_idle_session_expires(tmp_path):
    short = ServerProcess(
        tmp_path / "data",
        env={**CHEAP_ARGON2_ENV, "BASTION_IDENTITY__SESSION_IDLE_TIMEOUT_SECONDS": "2"},
    )
    short.init()
    short.start()
    try:
        _signup(short, "idle@example.com")
        token = _login(short, "idle@example.com")["token"]
        assert short.client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
        time.sleep(1.2)
        assert short.client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
        time.sleep(2.5)
        _assert_problem(short.client.get("/api/v1/me", headers=_bearer(token)), 401)
    finally:
        short.stop()


def test_totp_login_with_replay_refused_and_single_use_recovery_codes(server):
    import pyotp

    email = "second-factor@example.com"
    _signup(server, email)
    token = _login(server, email)["token"]
    enrolment = server.client.post("/api/v1/me/totp", headers=_bearer(token))
    assert enrolment.status_code == 200, enrolment.text
    body = enrolment.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/Bastion:")
    assert body["qr_svg"].startswith("<svg")
    authenticator = pyotp.TOTP(body["secret"])
    first_code = authenticator.now()
    confirmed = server.client.post(
        "/api/v1/me/totp/confirm", json={"code": first_code}, headers=_bearer(token)
    )
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recovery_codes"]
    assert len(recovery_codes) == 10
    me = server.client.get("/api/v1/me", headers=_bearer(token)).json()
    assert me["mfa_enabled"] is True

    def mfa_token():
        response = server.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        problem = _assert_problem(response, 401, "identity.mfa_required")
        assert problem["type"].endswith("/mfa-required")
        assert "set-cookie" not in response.headers
        return problem["mfa_token"]

    # The code that confirmed enrolment is spent: replaying it finishes no login.
    replay = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": mfa_token(), "code": first_code}
    )
    _assert_problem(replay, 401, "identity.mfa_code_invalid")
    next_code = authenticator.at(int(time.time()) + 30)  # the next step: inside the window
    done = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": mfa_token(), "code": next_code}
    )
    assert done.status_code == 200, done.text
    assert server.client.get("/api/v1/me", headers=_bearer(done.json()["token"])).status_code == 200
    again = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": mfa_token(), "code": next_code}
    )
    _assert_problem(again, 401, "identity.mfa_code_invalid")

    used = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": mfa_token(), "code": recovery_codes[0]}
    )
    assert used.status_code == 200, used.text
    reused = server.client.post(
        "/api/v1/auth/mfa", json={"mfa_token": mfa_token(), "code": recovery_codes[0]}
    )
    _assert_problem(reused, 401, "identity.mfa_code_invalid")


def test_an_operator_can_do_nothing_but_enrol_a_second_factor_until_they_have_one(server):
    import re

    import pyotp

    (token,) = re.findall(r"/bootstrap\?token=([A-Za-z0-9_-]+)", server.output())
    operator = {"email": "operator@example.com", "password": PASSWORD}
    created = server.client.post("/api/v1/bootstrap", json={"token": token, **operator})
    assert created.status_code == 201, created.text
    session = _login(server, operator["email"])["token"]
    assert server.client.get("/api/v1/me", headers=_bearer(session)).json()["is_operator"] is True
    blocked = server.client.get("/api/v1/me/sessions", headers=_bearer(session))
    _assert_problem(blocked, 403, "identity.mfa_enrolment_required")
    change = server.client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(session),
    )
    _assert_problem(change, 403, "identity.mfa_enrolment_required")

    secret = server.client.post("/api/v1/me/totp", headers=_bearer(session)).json()["secret"]
    confirmed = server.client.post(
        "/api/v1/me/totp/confirm",
        json={"code": pyotp.TOTP(secret).now()},
        headers=_bearer(session),
    )
    assert confirmed.status_code == 200, confirmed.text
    assert server.client.get("/api/v1/me/sessions", headers=_bearer(session)).status_code == 200


def test_turning_totp_off_needs_a_step_up_in_the_same_session(server):
    import pyotp

    email = "step-up@example.com"
    _signup(server, email)
    enrolling = _login(server, email)["token"]
    bystander = _login(server, email)["token"]  # a session that never proves a factor
    secret = server.client.post("/api/v1/me/totp", headers=_bearer(enrolling)).json()["secret"]
    confirmed = server.client.post(
        "/api/v1/me/totp/confirm",
        json={"code": pyotp.TOTP(secret).now()},
        headers=_bearer(enrolling),
    )
    codes = confirmed.json()["recovery_codes"]

    refused = server.client.delete("/api/v1/me/totp", headers=_bearer(bystander))
    _assert_problem(refused, 403, "identity.step_up_required")
    wrong = server.client.post(
        "/api/v1/auth/step-up", json={"code": "000000"}, headers=_bearer(bystander)
    )
    _assert_problem(wrong, 400, "identity.totp_code_invalid")
    stepped = server.client.post(
        "/api/v1/auth/step-up", json={"code": codes[0]}, headers=_bearer(bystander)
    )
    assert stepped.status_code == 204, stepped.text
    assert server.client.delete("/api/v1/me/totp", headers=_bearer(bystander)).status_code == 204
    assert (
        server.client.get("/api/v1/me", headers=_bearer(enrolling)).json()["mfa_enabled"] is False
    )
    _login(server, email)  # a password alone signs in again


def test_an_email_change_takes_effect_when_the_new_address_confirms_it(server):
    _signup(server, "old-address@example.com")
    token = _login(server, "old-address@example.com")["token"]
    wrong = server.client.post(
        "/api/v1/me/email",
        json={"email": "new-address@example.com", "password": "nope"},
        headers=_bearer(token),
    )
    _assert_problem(wrong, 400, "identity.current_password_wrong")
    asked = server.client.post(
        "/api/v1/me/email",
        json={"email": "new-address@example.com", "password": PASSWORD},
        headers=_bearer(token),
    )
    assert asked.status_code == 202, asked.text
    confirm = last_token(
        server.data_dir / "mail", to="new-address@example.com", subject_contains="new e-mail"
    )
    assert (
        server.client.post("/api/v1/auth/email/verify", json={"token": confirm}).status_code == 204
    )
    assert server.client.get("/api/v1/me", headers=_bearer(token)).json()["email"] == (
        "new-address@example.com"
    )
    _login(server, "new-address@example.com")
    _assert_problem(
        server.client.post(
            "/api/v1/auth/login", json={"email": "old-address@example.com", "password": PASSWORD}
        ),
        401,
    )
