"""Keys and encryption at rest. The only package that imports ``cryptography.hazmat``.

So far: the local master-key provider (key file or environment) and the self-signed TLS
certificate. Keyring, envelope encryption, blind indexes and signing arrive with the keys issue.
"""

from bastion.crypto.errors import CryptoError, KeyFileError
from bastion.crypto.kms.local import LocalKeyProvider, create_key_file
from bastion.crypto.tls import write_self_signed_certificate

__all__ = [
    "CryptoError",
    "KeyFileError",
    "LocalKeyProvider",
    "create_key_file",
    "write_self_signed_certificate",
]
