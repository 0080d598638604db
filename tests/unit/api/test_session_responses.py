"""Routes that start a session answer ``SessionToken`` JSON with the session cookies, built in
one place (``auth.session_response``), and still document that schema."""

import json
from datetime import UTC, datetime

from fastapi.routing import APIRoute

from bastion.api.deps import CSRF_COOKIE, SESSION_COOKIE
from bastion.api.routers import auth
from bastion.api.schemas.identity import SessionToken
from bastion.identity import IssuedSession, SessionId, UserId

SESSION_ROUTES = {"/api/v1/auth/login", "/api/v1/auth/mfa", "/api/v1/auth/passkey"}


def test_session_routes_document_the_session_token_schema():
    routes = {r.path: r for r in auth.router.routes if isinstance(r, APIRoute)}
    for path in SESSION_ROUTES:
        assert routes[path].response_model is SessionToken, path


def test_a_session_response_carries_the_token_body_and_both_cookies():
    expires = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    issued = IssuedSession(
        id=SessionId("s"),
        user_id=UserId("u"),
        token="tok",
        csrf_token="csrf",
        expires_at=expires,
        idle_expires_at=expires,
    )
    response = auth.session_response(issued)
    assert response.media_type == "application/json"
    body = SessionToken.model_validate(json.loads(response.body))
    assert (body.token, body.csrf_token, body.expires_at) == ("tok", "csrf", expires)
    cookies = response.headers.getlist("set-cookie")
    assert any(c.startswith(f"{SESSION_COOKIE}=tok;") and "HttpOnly" in c for c in cookies)
    assert any(c.startswith(f"{CSRF_COOKIE}=csrf;") and "HttpOnly" not in c for c in cookies)
