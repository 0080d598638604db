"""The hazardous layer, kept in one place: key generation, HKDF, Ed25519, HMAC.

Everything above this module deals in bytes and recipes; nothing here touches storage.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DATA_KEY_BYTES = 32  # AES-256
HMAC_KEY_BYTES = 32
ED25519_SEED_BYTES = 32
ED25519_PUBLIC_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def hkdf_sha256(key: bytes, *, info: bytes, length: int = HMAC_KEY_BYTES) -> bytes:
    """RFC 5869 HKDF-SHA256 with no salt: ``key`` is already uniformly random (a DEK or root key),
    so extraction adds nothing; ``info`` separates every use."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over length-prefixed ``parts`` (injective: ("ab","c") != ("a","bc"))."""
    message = b"".join(struct.pack(">I", len(part)) + part for part in parts)
    return hmac.digest(key, message, hashlib.sha256)


def new_signing_seed() -> tuple[bytes, bytes]:
    """A fresh Ed25519 private key as (32-byte seed, 32-byte raw public key)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return seed, raw_public_key(private)


def signing_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def raw_public_key(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def public_key_pem(public_key: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a raw Ed25519 public key (what `openssl pkey -pubin` reads)."""
    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_signature(public_key: bytes, *, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 (RFC 8032) signature of ``message`` by
    ``public_key`` (raw 32 bytes). Never raises for bad input: a malformed key or signature is
    simply not valid."""
    if len(public_key) != ED25519_PUBLIC_BYTES or len(signature) != ED25519_SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
