"""The seam between login and whatever watches logins (brute force, stuffing, new devices).

Identity calls a ``LoginGuard`` at three points of a password login and knows nothing of how it
decides; ``bastion.detection`` implements it (bootstrap injects it). Without one, ``OpenDoor``
lets everything through, which is what unit rigs and the CLI's own logins need.

The guard never learns the password. It sees an *account key*: the keyed blind index of the
normalised address (or of the raw text when it is not an address), the same for an unknown
address as for a real one, so that counting and locking cannot tell the two apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from bastion.identity.types import ClientInfo


class Admission(enum.Enum):
    """What the guard says before the password is checked."""

    OPEN = "open"
    # Refused exactly like a wrong password (no lockout oracle); the password is not verified.
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One password login as the guard sees it: no password, no address in clear."""

    account_key: bytes
    client: ClientInfo
    user_id: str | None = None
    password_changed_at: datetime | None = None
    # Where to write to the account's owner (a lock notice); None for an unknown account.
    email: str | None = field(default=None, repr=False)
    name: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A login that succeeded (after the second factor, if any): who, and where to write."""

    user_id: str
    email: str = field(repr=False)
    name: str | None = field(repr=False)
    client: ClientInfo
    mfa: str | None = None


class LoginGuard(Protocol):
    """Called inside the login's transaction; may write (locks, events) and may raise AppErrors
    of its own (a blocked source answers 429, unreachable counters 503)."""

    def admit(self, session: Session, attempt: LoginAttempt) -> Admission: ...
    def failed(self, session: Session, attempt: LoginAttempt) -> None: ...
    def succeeded(self, session: Session, attempt: LoginAttempt) -> None: ...
    def signed_in(self, session: Session, signed_in: SignedIn) -> None: ...


class OpenDoor:
    """A guard that admits everything and watches nothing (no detection configured)."""

    def admit(self, session: Session, attempt: LoginAttempt) -> Admission:  # noqa: ARG002 - protocol
        return Admission.OPEN

    def failed(self, session: Session, attempt: LoginAttempt) -> None:
        """Nothing to count."""

    def succeeded(self, session: Session, attempt: LoginAttempt) -> None:
        """Nothing to reset."""

    def signed_in(self, session: Session, signed_in: SignedIn) -> None:
        """Nothing to compare."""


__all__ = ["Admission", "LoginAttempt", "LoginGuard", "OpenDoor", "SignedIn"]
