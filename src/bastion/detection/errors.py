"""Detection errors. ``SourceBlocked`` is honest (429 with Retry-After: the source, not an
account, is refused, so it reveals nothing about any account); a locked account raises nothing
here, identity refuses it like a wrong password.

    DetectionError
    ├── SourceBlocked (RateLimited)          429  credential stuffing or too many failures
    ├── CountersUnavailable (Unavailable)    503  the configured counter storage is down
    └── LinkInvalid (InvalidInput)           400  unknown, used, expired or wrong-purpose link
"""

from __future__ import annotations

from bastion.errors import AppError, InvalidInput, RateLimited, Unavailable


class DetectionError(AppError):
    code = "detection.error"


class SourceBlocked(DetectionError, RateLimited):
    code = "detection.source_blocked"
    public_message = (
        "Too many failed sign-ins from this address; sign-in from it is blocked for a while."
    )


class CountersUnavailable(DetectionError, Unavailable):
    code = "detection.counters_unavailable"
    public_message = (
        "Sign-in is unavailable: the attempt counters cannot be reached. Retry shortly."
    )


class LinkInvalid(DetectionError, InvalidInput):
    code = "detection.link_invalid"
    public_message = "This link is not valid (unknown, already used or expired)."
