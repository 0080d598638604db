"""Small assertions shared by the end-to-end tests that speak HTTP to a real server."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_MEDIA_TYPE = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    """Headers presenting ``token`` (a session token or an API key)."""
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert a problem+json answer with ``status`` (and ``code``, if given); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body
