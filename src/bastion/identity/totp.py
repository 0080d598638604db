"""TOTP (RFC 6238) for authenticator apps: secrets, provisioning URIs, QR codes, verification.

Parameters are the ones every authenticator app supports: HMAC-SHA1, 6 digits, 30-second steps
(RFC 6238 §4; SHA-1 is sound in HMAC). A code is accepted for the current step and one step
either side (RFC 6238 §5.2, clock drift), and only for a step later than the last one accepted
for the user, so a code can never be used twice (ASVS V6.5.1).
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Final

import pyotp
import segno

TOTP_STEP_SECONDS: Final = 30
TOTP_DIGITS: Final = 6
TOTP_WINDOW_STEPS: Final = 1
SECRET_BASE32_CHARS: Final = 32  # 160 bits, RFC 4226 §4 recommends at least that
ISSUER: Final = "Bastion"


def new_secret() -> str:
    """A fresh base32 secret from ``secrets`` (via pyotp.random_base32)."""
    return pyotp.random_base32(SECRET_BASE32_CHARS)


def provisioning_uri(secret: str, *, account: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app imports."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (no external resources, fits the API's strict CSP)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4))


def step_at(moment: datetime) -> int:
    return int(moment.timestamp()) // TOTP_STEP_SECONDS


def matching_step(
    secret: str, code: str, *, now: datetime, last_used_step: int | None
) -> int | None:
    """The time step ``code`` is valid for (within the window, after ``last_used_step``), or None.

    Every candidate step is compared in constant time, and all of them are always computed, so
    the time taken does not depend on which one matched.
    """
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    current = step_at(now)
    matched: int | None = None
    for step in range(current - TOTP_WINDOW_STEPS, current + TOTP_WINDOW_STEPS + 1):
        expected = totp.generate_otp(step)
        if hmac.compare_digest(expected, code) and (
            last_used_step is None or step > last_used_step
        ):
            matched = step if matched is None else matched
    return matched
