"""The session and CSRF cookies: one place decides their attributes."""

from __future__ import annotations

from starlette.responses import Response

from bastion.api.deps import CSRF_COOKIE, SESSION_COOKIE
from bastion.identity import IssuedSession


def set_session_cookies(response: Response, issued: IssuedSession) -> None:
    """``__Host-`` prefix: Secure, Path=/, no Domain, so no sibling host can set or read it.

    The session cookie is HttpOnly (scripts never need it). The CSRF cookie is readable by the
    page's own scripts, so a reloaded single-page app can still send ``X-CSRF-Token``.
    """
    for name, value, http_only in (
        (SESSION_COOKIE, issued.token, True),
        (CSRF_COOKIE, issued.csrf_token, False),
    ):
        response.set_cookie(
            name,
            value,
            expires=issued.expires_at,
            path="/",
            secure=True,
            httponly=http_only,
            samesite="lax",
        )


def clear_session_cookies(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")
