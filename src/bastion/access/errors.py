"""Access errors. Hierarchy (kinds from ``bastion.errors`` decide the HTTP status)::

AccessError
├── TenantNotFound       NotFound      404  unknown tenant, or one the caller is not a member of
├── MemberNotFound       NotFound      404
├── PermissionDenied     Forbidden     403  a member whose role lacks the permission (audited)
├── OperatorOnly         Forbidden     403  an operator route called by anyone else
├── SlugTaken            Conflict      409
├── AlreadyMember        Conflict      409
├── LastOwner            Conflict      409  the last owner cannot be removed or downgraded
└── InvalidSlug          Unprocessable 422
"""

from __future__ import annotations

from bastion.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound, Unprocessable


class AccessError(AppError):
    code = "access.error"


class TenantNotFound(AccessError, NotFound):
    # The same answer for "does not exist" and "not yours": no existence oracle (invariant 1).
    code = "access.tenant_not_found"
    public_message = "No such tenant."


class MemberNotFound(AccessError, NotFound):
    code = "access.member_not_found"
    public_message = "No such member in this tenant."


class InvitationNotFound(AccessError, NotFound):
    code = "access.invitation_not_found"
    public_message = "No such pending invitation in this tenant."


class PermissionDenied(AccessError, Forbidden):
    code = "access.permission_denied"
    public_message = "Your role in this tenant does not allow this."
    # The refusal is written to the tenant's chain; the edge commits only that.
    audited_refusal = True


class OperatorOnly(AccessError, Forbidden):
    code = "access.operator_only"
    public_message = "Only operators may do this."


class SlugTaken(AccessError, Conflict):
    code = "access.slug_taken"
    public_message = "That slug is already taken."


class AlreadyMember(AccessError, Conflict):
    code = "access.already_member"
    public_message = "That user is already a member of this tenant."


class LastOwner(AccessError, Conflict):
    code = "access.last_owner"
    public_message = "A tenant must keep at least one owner."


class InvalidSlug(AccessError, Unprocessable):
    code = "access.invalid_slug"
    public_message = (
        "A slug has 3 to 63 characters: lower-case letters, digits and inner hyphens, "
        "and must not look like a tenant id."
    )


class InvitationInvalid(AccessError, InvalidInput):
    # One answer for unknown, used, expired and "not your address": the token is the secret,
    # and the answer must not say which of these applies.
    code = "access.invitation_invalid"
    public_message = "This invitation is not valid: unknown, already used, or expired."
