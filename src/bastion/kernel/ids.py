"""Identifiers and opaque tokens: always from ``secrets``, never from ``random``."""

from __future__ import annotations

import hashlib
import secrets
import uuid

TOKEN_BYTES = 32  # 256 bits


def new_id() -> str:
    return str(uuid.uuid4())


def new_token() -> str:
    """A URL-safe 256-bit random token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    """What is stored for a token: SHA-256, so a database leak yields no usable credential."""
    return hashlib.sha256(token.encode("utf-8")).digest()
