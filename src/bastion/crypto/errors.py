"""Crypto errors::

    CryptoError
    └── KeyFileError    the master key file is missing, unreadable, too open or malformed
"""

from bastion.errors import StartupError


class CryptoError(Exception):
    """Base of every crypto failure."""


class KeyFileError(CryptoError, StartupError):
    """The master key cannot be used; the message says why and what to do."""
