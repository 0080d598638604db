"""API-key errors. Hierarchy (kinds from ``bastion.errors`` decide the HTTP status; refusals
marked * are audited on the key's tenant chain and that audit entry is committed)::

AccessError
├── ApiKeyNotFound             NotFound      404  unknown, revoked, or another member's key
├── ApiKeyOtherTenant        * NotFound      404  a key used on a tenant it is not bound to
├── ApiKeyNotAllowed         * Forbidden     403  a key on a route that is not a tenant route
├── ApiKeyCannotCreateKeys     Forbidden     403  keys are minted only from a signed-in session
├── TooManyApiKeys             Conflict      409
├── ApiKeyPermissionInvalid    Unprocessable 422  unknown, or beyond the creator's role
└── ApiKeyExpiryInvalid        Unprocessable 422  in the past, beyond the maximum, or both forms
NotAuthenticated (identity)
└── ApiKeyRefused            * Unauthenticated 401 an expired or revoked key: the same answer as
                                                  an unknown one (the generic 401)
"""

from __future__ import annotations

from bastion.access.errors import AccessError, TenantNotFound
from bastion.errors import Conflict, Forbidden, NotFound, Unprocessable
from bastion.identity import NotAuthenticated


class ApiKeyNotFound(AccessError, NotFound):
    # Another member's key answers like a missing one: no oracle over other people's keys.
    code = "access.api_key_not_found"
    public_message = "No such API key in this tenant."


class ApiKeyOtherTenant(TenantNotFound):
    # Exactly TenantNotFound to the caller (same code, same text); only the audit differs.
    audited_refusal = True


class ApiKeyNotAllowed(AccessError, Forbidden):
    code = "access.api_key_not_allowed"
    public_message = (
        "API keys may call tenant routes only (/api/v1/tenants/{tenant}/...); this route "
        "manages an account or the service and needs a signed-in session."
    )
    audited_refusal = True


class ApiKeyCannotCreateKeys(AccessError, Forbidden):
    code = "access.api_key_cannot_create_keys"
    public_message = (
        "An API key cannot create API keys; sign in and prove a second factor (step-up) to "
        "create one."
    )


class TooManyApiKeys(AccessError, Conflict):
    code = "access.too_many_api_keys"
    public_message = "You have too many live API keys in this tenant; revoke one first."


class ApiKeyPermissionInvalid(AccessError, Unprocessable):
    code = "access.api_key_permission_invalid"
    public_message = (
        "An API key's permissions must be known permissions that your role in this tenant "
        "grants you."
    )


class ApiKeyExpiryInvalid(AccessError, Unprocessable):
    code = "access.api_key_expiry_invalid"
    public_message = (
        "Give expires_at or expires_in_days (not both): in the future and at most 365 days ahead."
    )


class ApiKeyRefused(NotAuthenticated):
    # The same code and text as any other failed authentication; the refusal of a key that
    # exists (expired, revoked) is recorded on its tenant's chain, hence committed.
    audited_refusal = True
