"""Password hashing (argon2id) and the password policy.

Hashing costs ~30 ms of CPU at the OWASP parameters (PERF-NOTES): it must never run on the event
loop. Every caller in Bastion is synchronous — the API's identity routes are plain ``def`` routes,
which Starlette runs in its threadpool, and argon2-cffi releases the GIL while hashing — so logins
proceed in parallel with the rest of the server. A unit test guards that those routes stay sync.

The policy follows NIST SP 800-63B §5.1.1.2 and ASVS V6.2: length 12-256 (no composition rules,
no truncation, compared exactly as typed), not in a shipped list of 139,974 common passwords,
a zxcvbn strength estimate with the user's e-mail, name and product words as context, and no
reuse of the last N passwords. Each refusal raises the ``PasswordRejected`` subclass naming the
rule, checked cheapest first.
"""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from bastion.identity.errors import (
    PasswordFromContext,
    PasswordReused,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
    PasswordTooWeak,
)

COMMON_PASSWORDS_RESOURCE = "common-passwords.txt.gz"
# zxcvbn's matching is super-linear in length; its own guard refuses more than 72 characters.
# Longer passwords are estimated on their first 72, which only ever underestimates strength.
ZXCVBN_MAX_CHARS = 72
HASH_LENGTH_BYTES = 32
SALT_LENGTH_BYTES = 16
# Shorter fragments ("a", "de") would strip ordinary letters out of unrelated passwords.
MIN_CONTEXT_TOKEN_CHARS = 3


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_kib: int
    time_cost: int
    parallelism: int


class PasswordHasher:
    """argon2id hashing, verification and "does this hash need upgrading" (the recipe layer).

    ``verify`` is constant-cost for a missing user too: ``verify_dummy`` spends the same work on
    a hash made at start-up with the current parameters, so unknown e-mails and wrong passwords
    cannot be told apart by timing.
    """

    def __init__(self, parameters: Argon2Parameters, *, max_concurrent: int | None = None) -> None:
        # At most one hash per core at a time: Starlette's threadpool has 40 threads, and 40
        # concurrent argon2 calls on 2 cores only take turns (each login waits 20 times longer)
        # while holding 40 x m of memory (760 MiB at 19 MiB). Waiting here costs no CPU.
        self._slots = threading.BoundedSemaphore(max_concurrent or available_cores())
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            hash_len=HASH_LENGTH_BYTES,
            salt_len=SALT_LENGTH_BYTES,
            type=argon2.Type.ID,
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """True if ``password`` matches; False for a mismatch or an unreadable stored hash."""
        try:
            with self._slots:
                return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        """Spend what ``verify`` spends, for a user who does not exist."""
        self.verify(self._dummy(), password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when ``stored_hash`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def _dummy(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                # Any fixed string: nobody can log in as a user that does not exist.
                self._dummy_hash = self._hasher.hash("bastion-dummy-password-for-timing")
            return self._dummy_hash


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@cache
def common_passwords() -> frozenset[str]:
    """The shipped common-password list (lower-cased), loaded on first use and kept."""
    data = resources.files("bastion.identity.data").joinpath(COMMON_PASSWORDS_RESOURCE)
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        return frozenset(line.rstrip("\n") for line in lines if line.strip())


def is_common_password(password: str) -> bool:
    return password.lower() in common_passwords()


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """The rules a new password must pass; see the module docstring."""

    min_length: int
    max_length: int
    min_score: int
    context_words: tuple[str, ...] = ()

    def check(self, password: str, *, user_inputs: Iterable[str] = ()) -> None:
        """Raise the PasswordRejected subclass of the first rule ``password`` fails.

        Length counts Unicode code points, as typed (no normalisation, no trimming).
        """
        if len(password) < self.min_length:
            raise PasswordTooShort(
                f"The password must have at least {self.min_length} characters.",
                min_length=self.min_length,
            )
        if len(password) > self.max_length:
            raise PasswordTooLong(
                f"The password must have at most {self.max_length} characters.",
                max_length=self.max_length,
            )
        if is_common_password(password):
            raise PasswordTooCommon
        tokens = _context_tokens([*self.context_words, *user_inputs])
        score = estimate_strength(password, tokens)
        if score < self.min_score:
            raise PasswordTooWeak(
                "This password is too easy to guess: add more words or characters.",
                score=score,
                min_score=self.min_score,
            )
        # ASVS V6.2.11: "Bastion2025!!" scores well on its own, but the product name adds no
        # secrecy. Judge what is left once every context word is taken out.
        remainder = _without_context(password, tokens)
        if remainder != password.lower() and estimate_strength(remainder, tokens) < self.min_score:
            raise PasswordFromContext(min_score=self.min_score)


def estimate_strength(password: str, user_inputs: Sequence[str]) -> int:
    """zxcvbn's score, 0 (trivial) to 4 (very hard), with ``user_inputs`` as a dictionary."""
    if not password:
        return 0
    result = zxcvbn(password[:ZXCVBN_MAX_CHARS], user_inputs=list(user_inputs))
    return int(result["score"])


def _without_context(password: str, tokens: Sequence[str]) -> str:
    remainder = password.lower()
    for token in sorted(tokens, key=len, reverse=True):
        if len(token) >= MIN_CONTEXT_TOKEN_CHARS:
            remainder = remainder.replace(token, "")
    return remainder


def _context_tokens(values: Sequence[str]) -> list[str]:
    # "alice.smith@example.com" also yields "alice", "smith", "example": people build passwords
    # from the parts, not from the whole address.
    tokens: set[str] = set()
    for value in values:
        lowered = value.lower()
        tokens.add(lowered)
        for separator in "@.+-_ ":
            lowered = lowered.replace(separator, " ")
        tokens.update(part for part in lowered.split() if len(part) >= MIN_CONTEXT_TOKEN_CHARS)
    return sorted(tokens)


def check_not_reused(hasher: PasswordHasher, password: str, recent_hashes: Iterable[str]) -> None:
    """Raise PasswordReused if ``password`` matches any of ``recent_hashes`` (argon2 each)."""
    for stored in recent_hashes:
        if hasher.verify(stored, password):
            raise PasswordReused
