"""Audit test helpers: a keyring stand-in built on plain ``cryptography``, and direct tampering.

``TestKeyring`` implements exactly the methods the audit package needs from the real keyring
(``system_mac``, ``sign``, ``signing_public_key``), so the audit code is tested against its
protocols rather than against the crypto package, which is written in parallel.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, text

from bastion.audit import Keys
from bastion.audit.canonical import key_id_for


class TestKeyring:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self) -> None:
        self._mac_key = os.urandom(32)
        self._private = Ed25519PrivateKey.generate()

    def system_mac(self, purpose: str, message: bytes) -> bytes:
        return hmac.digest(self._mac_key, purpose.encode() + b"\x00" + message, hashlib.sha256)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def signing_public_key(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def public_key_pem(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def keys_for(keyring: TestKeyring) -> Keys:
    public_key = keyring.signing_public_key()
    return Keys(public_keys={key_id_for(public_key): public_key}, verify_signature=verify_ed25519)


def tamper(engine: Engine, *statements: str, **params: object) -> None:
    """Run SQL as a database administrator would: append-only triggers out of the way first."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            triggers = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, _ in triggers:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
        for statement in statements:
            connection.execute(text(statement), params)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        else:
            for _, sql in triggers:
                connection.execute(text(sql))
