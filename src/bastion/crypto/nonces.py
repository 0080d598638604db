"""Random 96-bit AES-GCM nonces, drawn from the OS CSPRNG many at a time.

Why: on this project's machines one ``os.urandom(12)`` (a getrandom system call) costs ~1.3 µs,
a third of sealing and opening a 1 KiB record. Drawing ``POOL_NONCES`` nonces per call makes it
~10 ns each.

Why it is safe: a GCM nonce is public (it is stored in front of the ciphertext); the one
requirement is that it never repeats under a key (NIST SP 800-38D, 8.2.2 random construction).
The nonces are still independent uniform draws of the OS CSPRNG, so the 2^32-encryptions bound
of random nonces is unchanged. Repetition could only come from handing one slot out twice:

- within a process, each slot is taken through ``itertools.count`` (atomic under the GIL) over a
  (pool, counter) pair that is replaced as a whole, so every offset of a pool is used once;
- across ``fork``, the child discards the inherited pool (``os.register_at_fork``), so parent
  and child never draw from the same bytes.

Callers on the hot path inline ``take`` (see ``Keyring.seal``)::

    pool, offsets = NONCES.state
    at = next(offsets)
    nonce = pool[at : at + NONCE_BYTES] or NONCES.refill()
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from typing import Final

from bastion.crypto.envelope import NONCE_BYTES

POOL_NONCES: Final = 1024
POOL_BYTES: Final = POOL_NONCES * NONCE_BYTES


def _fresh() -> tuple[bytes, Iterator[int]]:
    return os.urandom(POOL_BYTES), itertools.count(0, NONCE_BYTES)


class NoncePool:
    """A thread-safe, fork-safe source of never-repeating random 96-bit nonces."""

    __slots__ = ("_lock", "state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One attribute holding the pair, so a reader always sees a pool with its own counter.
        self.state: tuple[bytes, Iterator[int]] = _fresh()

    def take(self) -> bytes:
        """One nonce (the inlined form is in the module docstring)."""
        pool, offsets = self.state
        at = next(offsets)
        return pool[at : at + NONCE_BYTES] or self.refill()

    def refill(self) -> bytes:
        """The pool ran out: install a fresh one (once, if several threads get here) and take."""
        while True:
            with self._lock:
                pool, offsets = self.state
                at = next(offsets)
                nonce = pool[at : at + NONCE_BYTES]
                if nonce:
                    return nonce
                self.state = _fresh()

    def discard(self) -> None:
        """Forget the pool (in a forked child: its bytes are also the parent's)."""
        # No lock: after fork only this thread exists, and the parent's lock may be held.
        self.state = _fresh()


NONCES: Final = NoncePool()
os.register_at_fork(after_in_child=NONCES.discard)
