"""Request and response shapes of the passkey and operator-user endpoints.

A WebAuthn credential is the browser's ``PublicKeyCredential.toJSON()`` object; its fields vary
by browser and authenticator (extensions, hints), so the shape is left to py_webauthn's parser
and only its size is bounded here. Ceremony *options* are returned as py_webauthn renders them
(``options_to_json``), ready for ``PublicKeyCredential.parseCreationOptionsFromJSON``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from bastion.api.schemas.identity import Token

# Far above a real credential (a few KiB even with an RSA key and a certificate chain).
MAX_CREDENTIAL_JSON_CHARS = 64 * 1024


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value)) > MAX_CREDENTIAL_JSON_CHARS:
        raise ValueError(f"a WebAuthn credential is at most {MAX_CREDENTIAL_JSON_CHARS} characters")
    return value


WebAuthnCredentialJson = Annotated[dict[str, Any], AfterValidator(_bounded)]
PasskeyName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=100, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterPasskeyRequest(_Request):
    name: PasskeyName
    credential: WebAuthnCredentialJson


class AssertionRequest(_Request):
    credential: WebAuthnCredentialJson


class PasskeyMfaOptionsRequest(_Request):
    mfa_token: Token


class Passkey(BaseModel):
    id: str
    name: str
    transports: list[str]
    aaguid: str
    created_at: datetime
    last_used_at: datetime | None


class PasskeyList(BaseModel):
    items: list[Passkey]


class SessionsRevoked(BaseModel):
    sessions_revoked: int
    api_keys_revoked: int
