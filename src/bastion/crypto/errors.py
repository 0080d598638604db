"""Crypto errors::

CryptoError
├── KeyFileError (StartupError)   the master key file is missing, unreadable, too open or bad
├── KeyUnwrapError                a wrapped key did not authenticate under the master key
└── HsmError (StartupError)       the PKCS#11 module, token or key cannot be used right now
    └── HsmPinError               the token refused the user PIN (not retried: tokens lock it)
"""

from bastion.errors import StartupError


class CryptoError(Exception):
    """Base of every crypto failure."""


class KeyFileError(CryptoError, StartupError):
    """The master key cannot be used; the message says why and what to do."""


class KeyUnwrapError(CryptoError):
    """A wrapped key failed to authenticate: wrong master key, or tampered blob or context."""


class HsmError(CryptoError, StartupError):
    """The PKCS#11 master key cannot be used; one line saying what is wrong and what to do."""


class HsmPinError(HsmError):
    """The token refused the user PIN; the provider does not try that PIN again."""
