"""Access errors. Hierarchy (kinds from ``bastion.errors`` decide the HTTP status)::

AccessError
├── TenantNotFound       NotFound      404  unknown tenant, or one the caller is not a member of
├── MemberNotFound       NotFound      404
├── PermissionDenied     Forbidden     403  a member whose role lacks the permission (audited)
├── OperatorOnly         Forbidden     403  an operator route called by anyone else
├── SlugTaken            Conflict      409
├── AlreadyMember        Conflict      409
├── LastOwner            Conflict      409  the last owner cannot be removed or downgraded
├── InvalidSlug          Unprocessable 422
│   issue 6 (tenant policy, custom roles, break-glass; refusals marked * are audited):
├── IpNotAllowed       * Forbidden     403  the client address is outside the tenant's allow-list
├── TenantMfaRequired  * Forbidden     403  the tenant requires a second factor the caller lacks
├── SelfApproval       * Forbidden     403  an operator approving their own break-glass request
├── InvalidPolicy      * Unprocessable 422  a bad CIDR, too many entries
├── PolicyLockout      * Conflict      409  the change would lock the caller out
├── RoleNotFound       * NotFound      404  no such custom role in this tenant
├── UnknownMember      * NotFound      404  MemberNotFound, audited (role assignment)
├── UnknownRole        * Unprocessable 422  assigning a role that does not exist
├── UnknownPermission  * Unprocessable 422  a permission outside ``Permission``
├── RoleNotGrantable   * Unprocessable 422  a permission a custom role may never hold, or a
│                                           custom role for an owner
├── InvalidRoleName    * Unprocessable 422  a built-in role's name, or a malformed one
├── RoleNameTaken      * Conflict      409
├── RoleInUse          * Conflict      409  deleting a role some member holds
├── UnknownTenant      * NotFound      404  a break-glass request for a tenant that does not exist
├── InvalidBreakGlass  * Unprocessable 422  no reason, or a duration outside 1..480 minutes
├── GrantNotFound      * NotFound      404  no such break-glass grant in this tenant
└── GrantNotPending    * Conflict      409  approving a grant that is not awaiting approval
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


class _AuditedRefusal(AccessError):
    # The service wrote the refusal to the tenant's chain before raising, and nothing else:
    # the edge commits that entry (``bastion.api.deps.get_session``).
    audited_refusal = True


class IpNotAllowed(_AuditedRefusal, Forbidden):
    # 403, not 404: the membership is already established, and the member needs to know the
    # refusal comes from the tenant's network policy, not from a missing tenant or role.
    code = "access.ip_not_allowed"
    public_message = "This tenant does not accept requests from your network address."


class TenantMfaRequired(_AuditedRefusal, Forbidden):
    code = "access.mfa_enrolment_required"
    public_message = (
        "This tenant requires a second factor. Enrol one (POST /api/v1/me/totp) and try again."
    )


class SelfApproval(_AuditedRefusal, Forbidden):
    code = "access.break_glass_self_approval"
    public_message = "A break-glass request must be approved by someone other than its requester."


class InvalidPolicy(_AuditedRefusal, Unprocessable):
    code = "access.invalid_policy"
    public_message = "The tenant settings are not valid."


class PolicyLockout(_AuditedRefusal, Conflict):
    code = "access.policy_lockout"
    public_message = "This change would lock you out of the tenant."


class RoleNotFound(_AuditedRefusal, NotFound):
    code = "access.role_not_found"
    public_message = "No such role in this tenant."


class UnknownMember(_AuditedRefusal, MemberNotFound):
    """MemberNotFound (same code and answer), for the governance paths that audit it."""


class UnknownRole(_AuditedRefusal, Unprocessable):
    code = "access.unknown_role"
    public_message = "No such role: neither a built-in role nor a custom role of this tenant."


class UnknownPermission(_AuditedRefusal, Unprocessable):
    code = "access.unknown_permission"
    public_message = "No such permission."


class RoleNotGrantable(_AuditedRefusal, Unprocessable):
    code = "access.role_not_grantable"
    public_message = (
        "Custom roles may not hold owner, role or tenant-settings management, "
        "and owners cannot hold a custom role."
    )


class InvalidRoleName(_AuditedRefusal, Unprocessable):
    code = "access.invalid_role_name"
    public_message = (
        "A role name has 3 to 40 characters (lower-case letters, digits, '-' and '_') "
        "and is not a built-in role's name."
    )


class RoleNameTaken(_AuditedRefusal, Conflict):
    code = "access.role_name_taken"
    public_message = "This tenant already has a role with that name."


class RoleInUse(_AuditedRefusal, Conflict):
    code = "access.role_in_use"
    public_message = "Members still hold this role; assign them another one first."


class UnknownTenant(_AuditedRefusal, NotFound):
    code = "access.tenant_not_found"
    public_message = "No such tenant."


class InvalidBreakGlass(_AuditedRefusal, Unprocessable):
    code = "access.break_glass_invalid"
    public_message = (
        "A break-glass request needs a reason (10 to 1000 characters) and a duration of "
        "1 to 480 minutes."
    )


class GrantNotFound(_AuditedRefusal, NotFound):
    code = "access.break_glass_not_found"
    public_message = "No such break-glass grant."


class GrantNotPending(_AuditedRefusal, Conflict):
    code = "access.break_glass_not_pending"
    public_message = (
        "This break-glass request is not awaiting approval (approved, revoked or lapsed)."
    )
