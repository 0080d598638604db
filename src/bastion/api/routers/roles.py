"""``/api/v1/tenants/{tenant}/roles``: custom roles, and giving a member any role by name.

Everything here needs ``access:role:manage`` (owners; no custom role can hold it). A role or
permission that does not exist is a 422, another tenant's role a 404, and a role still held by
a member cannot be deleted (409); every refusal is audited and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from bastion.access import Permission, TenantContext
from bastion.access.roles import CustomRole
from bastion.api.access import requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.access import MemberOut
from bastion.api.schemas.governance import AssignRoleRequest, RoleIn, RoleList, RoleOut, RolePatch

router = APIRouter(prefix="/api/v1/tenants/{tenant}", tags=["roles"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "Only owners manage roles (audited)."},
    404: {"description": "No such tenant or role, or the caller is not a member."},
}
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    409: {"description": "Name taken, role in use, or the last owner (audited)."},
    422: {"description": "Unknown or non-grantable permission, bad name (audited)."},
}
RolePath = Annotated[str, Path(min_length=1, max_length=40)]
UserPath = Annotated[str, Path(min_length=1, max_length=36)]
Manage = Annotated[TenantContext, requires(Permission.ROLE_MANAGE)]


def _out(role: CustomRole) -> RoleOut:
    return RoleOut(
        id=role.id,
        name=role.name,
        description=role.description,
        permissions=sorted(permission.value for permission in role.permissions),
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


@router.get("/roles", responses=PROBLEMS)
def list_roles(context: Manage, container: ContainerDep, session: SessionDep) -> RoleList:
    """The tenant's custom roles, by name (at most 100 per tenant, so one page)."""
    return RoleList(items=[_out(r) for r in container.governance.roles.all(session, context)])


@router.post("/roles", status_code=status.HTTP_201_CREATED, responses=WRITE_PROBLEMS)
def create_role(
    body: RoleIn, context: Manage, container: ContainerDep, session: SessionDep, client: ClientDep
) -> RoleOut:
    """A custom role from the permission vocabulary (never owner, role or settings management)."""
    role = container.governance.roles.create(
        session,
        context,
        name=body.name,
        description=body.description,
        permissions=body.permissions,
        client=client,
    )
    return _out(role)


@router.get("/roles/{role}", responses=PROBLEMS)
def get_role(
    role: RolePath, context: Manage, container: ContainerDep, session: SessionDep, client: ClientDep
) -> RoleOut:
    """One custom role, by id or name (another tenant's role is a 404, audited)."""
    return _out(container.governance.roles.get(session, context, role, client=client))


@router.patch("/roles/{role}", responses=WRITE_PROBLEMS)
def update_role(
    *,
    role: RolePath,
    body: RolePatch,
    context: Manage,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> RoleOut:
    """Rename a role or change its permissions; its holders get them on their next request."""
    updated = container.governance.roles.update(
        session,
        context,
        role,
        name=body.name,
        description=body.description,
        permissions=body.permissions,
        client=client,
    )
    return _out(updated)


@router.delete("/roles/{role}", status_code=status.HTTP_204_NO_CONTENT, responses=WRITE_PROBLEMS)
def delete_role(
    role: RolePath, context: Manage, container: ContainerDep, session: SessionDep, client: ClientDep
) -> Response:
    """Delete a role nobody holds (409 otherwise)."""
    container.governance.roles.delete(session, context, role, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/members/{user}/role", responses=WRITE_PROBLEMS)
def assign_role(
    *,
    user: UserPath,
    body: AssignRoleRequest,
    context: Manage,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> MemberOut:
    """Give a member a built-in or custom role by name; effective on their next request.
    Owners cannot hold a custom role, and the last owner cannot be downgraded."""
    member = container.governance.roles.assign(
        session, context, user_id=user, role=body.role, client=client
    )
    return MemberOut(
        user_id=member.user_id,
        role=member.role,
        joined_at=member.joined_at,
        custom_role=member.custom_role,
    )
