"""Crypto errors::

CryptoError                       provider-level failures (not shown to API clients as such)
├── KeyFileError (StartupError)   the master key file is missing, unreadable, too open or malformed
├── KeyUnwrapError                a wrapped key did not authenticate under the master key
├── MasterKeyMismatchError (StartupError)
│       the configured master key is not the one that wraps the keyring
└── HsmError (StartupError)       the PKCS#11 module, token or key cannot be used right now
    └── HsmPinError               the token refused the user PIN (not retried: tokens lock it)

KeyringError (AppError)
├── IntegrityCheckError           every failure to open sealed data: tampered bytes, wrong
│                                 associated data (moved ciphertext), malformed input, unknown or
│                                 retired key version. One class, as Fernet's InvalidToken; the
│                                 message names the object, never the plaintext.
├── TenantErasedError (Gone)      the tenant was crypto-shredded: its data is gone for good
├── KeyNotProvisionedError (NotFound)   no data key was ever created for this tenant
├── KeyRetirementRefusedError (Conflict) the version is still needed (active, in use, too recent)
└── KeyringConflictError (Conflict)      a concurrent key change won; retry
"""

from __future__ import annotations

from bastion.errors import AppError, Conflict, Gone, NotFound, StartupError


class CryptoError(Exception):
    """Base of every provider-level crypto failure."""


class KeyFileError(CryptoError, StartupError):
    """The master key cannot be used; the message says why and what to do."""


class KeyUnwrapError(CryptoError):
    """A wrapped key failed to authenticate: wrong master key, or tampered blob or context."""


class MasterKeyMismatchError(CryptoError, StartupError):
    """The configured master key does not unwrap the keyring; nothing was changed."""


class HsmError(CryptoError, StartupError):
    """The PKCS#11 master key cannot be used; one line saying what is wrong and what to do."""


class HsmPinError(HsmError):
    """The token refused the user PIN; the provider does not try that PIN again."""


class KeyringError(AppError):
    code = "crypto.error"
    public_message = "A cryptographic operation failed."


class IntegrityCheckError(KeyringError):
    # No HTTP kind on purpose: this is a server-side data fault (500), never the caller's input.
    code = "crypto.integrity_check_failed"
    public_message = "Stored data failed its integrity check."


class TenantErasedError(KeyringError, Gone):
    code = "crypto.tenant_erased"
    public_message = "This tenant's data was erased."


class KeyNotProvisionedError(KeyringError, NotFound):
    code = "crypto.key_not_provisioned"
    public_message = "No data key exists for this tenant."


class KeyRetirementRefusedError(KeyringError, Conflict):
    code = "crypto.key_retirement_refused"
    public_message = "This key version is still needed."


class KeyringConflictError(KeyringError, Conflict):
    code = "crypto.keyring_conflict"
    public_message = "The keyring changed concurrently; retry."
