"""A software WebAuthn authenticator for tests: an EC P-256 key, "none" attestation.

It answers the options JSON a Bastion server hands out the way a browser plus platform
authenticator would (WebAuthn L2 §6.1 authenticator data, §6.5.1 attested credential data, COSE
key per RFC 9053), so the server's real verification runs unchanged. CBOR comes from
py_webauthn's own helper (``webauthn.helpers.encode_cbor``, over cbor2): no extra dependency.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_ATTESTED_DATA = 0x40
COSE_EC2, COSE_ES256, COSE_P256 = 2, -7, 1


def b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _options(options: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(options) if isinstance(options, str) else options


class SoftAuthenticator:
    """One passkey. ``origin`` is what the "browser" reports; ``rp_id`` overrides the RP id
    it signs for (to impersonate another site in tests)."""

    def __init__(self, *, origin: str = "https://localhost", counter: bool = True) -> None:
        self.origin = origin
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.counter = counter  # False: an authenticator without a counter (always 0)
        self.user_handle: bytes | None = None

    def clone(self) -> SoftAuthenticator:
        """A copy with the same key and counter: what an attacker who extracted the key has."""
        return copy.copy(self)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return encode_cbor(
            {
                1: COSE_EC2,
                3: COSE_ES256,
                -1: COSE_P256,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(
        self, options: str | dict[str, Any], *, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """A registration response (``navigator.credentials.create``) as JSON."""
        opts = _options(options)
        self.user_handle = from_b64url(opts["user"]["id"])
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        attested = (
            bytes(16)  # AAGUID: all zeros, as "none" attestation allows
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self.cose_public_key()
        )
        auth_data = self._auth_data(
            rp_id or opts["rp"]["id"], FLAG_USER_PRESENT | FLAG_USER_VERIFIED | FLAG_ATTESTED_DATA
        )
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data + attested})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
    ) -> dict[str, Any]:
        """An assertion (``navigator.credentials.get``) as JSON; advances the counter."""
        opts = _options(options)
        if self.counter:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", opts["challenge"], origin)
        flags = FLAG_USER_PRESENT | (FLAG_USER_VERIFIED if user_verified else 0)
        auth_data = self._auth_data(rp_id or opts["rpId"], flags)
        signature = self.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode("utf-8")

    def _auth_data(self, rp_id: str, flags: int) -> bytes:
        count = self.sign_count if self.counter else 0
        return (
            hashlib.sha256(rp_id.encode("utf-8")).digest()
            + bytes([flags])
            + count.to_bytes(4, "big")
        )
