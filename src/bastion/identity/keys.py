"""The keyring recipes identity needs, as a Protocol (``crypto.Keyring`` satisfies it).

- ``seal_system``/``open_system``: the e-mail address (and, later, TOTP secrets) under the system
  data key, bound to (purpose, user id) by the AAD.
- ``system_mac``: the e-mail blind index. Users are not tenant-owned, so the per-tenant
  ``blind_index`` does not apply; the system MAC is keyed, stable for the installation and
  domain-separated by purpose, which is what a system-level blind index needs.
"""

from __future__ import annotations

from typing import Final, Protocol

from bastion.identity.emails import EmailAddress
from bastion.identity.models import EmailToken, User

EMAIL_PURPOSE: Final = "identity.user_email"
EMAIL_INDEX_PURPOSE: Final = "identity.email_index"
PENDING_EMAIL_PURPOSE: Final = "identity.pending_email"
# Where these sealed values are stored, each bound to its row's primary key: bootstrap registers
# them for system data-key re-encryption and retirement (``crypto.SystemSealedColumn``).
SYSTEM_SEALED: Final = (
    (User.email_sealed, EMAIL_PURPOSE),
    (EmailToken.payload_sealed, PENDING_EMAIL_PURPOSE),
)


class SystemKeys(Protocol):
    def seal_system(self, *, purpose: str, record_id: str, plaintext: bytes) -> bytes: ...
    def open_system(self, *, purpose: str, record_id: str, sealed: bytes) -> bytes: ...
    def system_mac(self, purpose: str, message: bytes) -> bytes: ...


def email_index(keys: SystemKeys, address: EmailAddress) -> bytes:
    """The blind index of an address: case-insensitive, as lookups are (see ``emails``)."""
    return keys.system_mac(EMAIL_INDEX_PURPOSE, address.lookup_key.encode("utf-8"))


def seal_email(keys: SystemKeys, user_id: str, address: EmailAddress) -> bytes:
    return keys.seal_system(
        purpose=EMAIL_PURPOSE, record_id=user_id, plaintext=address.value.encode("utf-8")
    )


def open_email(keys: SystemKeys, user_id: str, sealed: bytes) -> str:
    """The address of ``user_id``; the keyring's IntegrityCheckError if it was moved or altered."""
    return keys.open_system(purpose=EMAIL_PURPOSE, record_id=user_id, sealed=sealed).decode("utf-8")


def seal_pending_email(keys: SystemKeys, token_id: str, address: EmailAddress) -> bytes:
    """A requested new address, sealed to its confirmation token row."""
    return keys.seal_system(
        purpose=PENDING_EMAIL_PURPOSE, record_id=token_id, plaintext=address.value.encode("utf-8")
    )


def open_pending_email(keys: SystemKeys, token_id: str, sealed: bytes) -> str:
    return keys.open_system(
        purpose=PENDING_EMAIL_PURPOSE, record_id=token_id, sealed=sealed
    ).decode("utf-8")
