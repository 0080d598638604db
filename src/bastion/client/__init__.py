"""A Python client for Bastion's HTTP API (httpx; typed results; problem+json errors).

    from bastion.client import BastionClient

    with BastionClient("https://127.0.0.1:8443", verify="var/tls/cert.pem") as bastion:
        bastion.login("ada@example.com", "...", mfa_code=lambda: input("code: "))
        tenant = bastion.create_tenant("Acme", "acme")

It imports nothing else from Bastion, so it can be vendored on its own.
"""

from bastion.client.client import BastionClient
from bastion.client.errors import (
    AuthenticationFailed,
    BadRequest,
    BastionError,
    Conflict,
    Forbidden,
    MfaRequired,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ProblemError,
    RateLimited,
    ServerError,
    TransportError,
    ValidationFailed,
)
from bastion.client.types import (
    Account,
    ApiKey,
    AuditEvent,
    Collection,
    CreatedApiKey,
    Invitation,
    Member,
    Page,
    Record,
    SessionInfo,
    SessionToken,
    Tenant,
    TotpEnrolment,
)

__all__ = [
    "Account",
    "ApiKey",
    "AuditEvent",
    "AuthenticationFailed",
    "BadRequest",
    "BastionClient",
    "BastionError",
    "Collection",
    "Conflict",
    "CreatedApiKey",
    "Forbidden",
    "Invitation",
    "Member",
    "MfaRequired",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ProblemError",
    "RateLimited",
    "Record",
    "ServerError",
    "SessionInfo",
    "SessionToken",
    "Tenant",
    "TotpEnrolment",
    "TransportError",
    "ValidationFailed",
]
