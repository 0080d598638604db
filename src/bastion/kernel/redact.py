"""Redaction of secrets before anything is shown or logged."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "**********"
SECRET_KEY_FRAGMENTS = ("password", "secret", "token", "key_base64", "authorization", "cookie")


def redact_url(url: str) -> str:
    """Hide the password of a URL such as ``postgresql://user:pw@host/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=4096)  # bounded: names may come from callers' JSON
def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(fragment in lowered for fragment in SECRET_KEY_FRAGMENTS)


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every secret-looking key masked, recursively."""
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            cleaned[name] = redact_mapping(value)
        elif is_secret_key(name) and value is not None:
            cleaned[name] = REDACTED
        else:
            cleaned[name] = value
    return cleaned
