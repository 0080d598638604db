"""Keys and encryption at rest. The only package that imports ``cryptography.hazmat``.

Owns: master-key providers (``kms``), the keyring (tenant and system data keys, stored only
wrapped), the sealed-data format, blind indexes, the Ed25519 signing key, rotation, re-encryption
and crypto-shredding, and the self-signed development TLS certificate.

Must never: take a nonce or a key from a caller, log or return key material, or decrypt into
anything but the exact (tenant, purpose, record id) the value was sealed for.
"""

from bastion.crypto.errors import (
    CryptoError,
    IntegrityCheckError,
    KeyFileError,
    KeyNotProvisionedError,
    KeyRetirementRefusedError,
    KeyringConflictError,
    KeyringError,
    KeyUnwrapError,
    MasterKeyMismatchError,
    TenantErasedError,
)
from bastion.crypto.keyring import Keyring
from bastion.crypto.kms.base import KeyProvider
from bastion.crypto.kms.local import LocalKeyProvider, create_key_file, replace_key_file
from bastion.crypto.primitives import verify_signature
from bastion.crypto.reencrypt import ReencryptionTarget, SealedItem, TableReencryptionTarget
from bastion.crypto.streaming import StreamKeys, StreamOpener, StreamSealer
from bastion.crypto.system_sealed import SystemSealedColumn
from bastion.crypto.tls import write_self_signed_certificate
from bastion.crypto.types import ErasureReceipt, KekRotationReport, KeyVersion, ReencryptionReport

__all__ = [
    "CryptoError",
    "ErasureReceipt",
    "IntegrityCheckError",
    "KekRotationReport",
    "KeyFileError",
    "KeyNotProvisionedError",
    "KeyProvider",
    "KeyRetirementRefusedError",
    "KeyUnwrapError",
    "KeyVersion",
    "Keyring",
    "KeyringConflictError",
    "KeyringError",
    "LocalKeyProvider",
    "MasterKeyMismatchError",
    "ReencryptionReport",
    "ReencryptionTarget",
    "SealedItem",
    "StreamKeys",
    "StreamOpener",
    "StreamSealer",
    "SystemSealedColumn",
    "TableReencryptionTarget",
    "TenantErasedError",
    "create_key_file",
    "replace_key_file",
    "verify_signature",
    "write_self_signed_certificate",
]
