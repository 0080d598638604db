"""The key-provider interface: whatever holds the master key (KEK).

Data keys (DEKs) are stored only wrapped by the provider. ``context`` is associated data that binds
a wrapped key to what it is for (tenant, key version), so a wrapped key moved elsewhere fails to
unwrap. Implementations: ``local`` (file or environment) and ``pkcs11`` (an HSM token).
"""

from __future__ import annotations

from typing import Protocol


class KeyProvider(Protocol):
    @property
    def key_id(self) -> str:
        """A stable, non-secret identifier of the current master key (changes on KEK rotation)."""
        ...

    @property
    def description(self) -> str:
        """Where the key lives, for messages (never the key itself)."""
        ...

    def check(self) -> None:
        """Raise a CryptoError saying what is wrong if the key is unusable right now."""
        ...

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """Encrypt-and-authenticate a data key under the master key."""
        ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Inverse of ``wrap``; raises a CryptoError if the blob or context was tampered with."""
        ...
