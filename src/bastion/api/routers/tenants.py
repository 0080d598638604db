"""``/api/v1/tenants``: create and list tenants, and manage a tenant's members.

Each route declares its access rule (``bastion.api.access``); tenant routes get their
``TenantContext`` from that declaration, never from the path alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from bastion.access import Member, Permission, TenantContext
from bastion.api.access import authenticated, requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.access import (
    AddMemberRequest,
    ChangeRoleRequest,
    CreateTenantRequest,
    MemberList,
    MemberOut,
    MyTenant,
    MyTenantList,
    TenantOut,
)
from bastion.identity import Principal

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "The caller's role lacks the permission (audited)."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}
MEMBER_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    409: {"description": "The tenant would be left without an owner."},
}
UserPath = Annotated[str, Path(min_length=1, max_length=36)]
MAX_PAGE = 200


def _member(member: Member) -> MemberOut:
    return MemberOut(
        user_id=member.user_id,
        role=member.role,
        joined_at=member.joined_at,
        custom_role=member.custom_role,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**PROBLEMS, 409: {"description": "Slug taken."}, 422: {"description": "Bad slug."}},
)
def create_tenant(
    body: CreateTenantRequest,
    principal: Annotated[Principal, authenticated(own_transaction=True)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> TenantOut:
    """Create a tenant; the caller becomes its owner and its data key is provisioned."""
    tenant = container.access.create_tenant(
        session, user_id=principal.user_id, name=body.name, slug=body.slug, client=client
    )
    return TenantOut(id=tenant.id, slug=tenant.slug, name=tenant.name)


@router.get("", responses=PROBLEMS)
def list_my_tenants(
    principal: Annotated[Principal, authenticated()],
    container: ContainerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=63)] = None,
) -> MyTenantList:
    """The tenants the caller is a member of, with the caller's role, ordered by slug;
    ``cursor`` (the last slug of a page) continues after it."""
    memberships = container.access.my_tenants(
        session, user_id=principal.user_id, after=cursor, limit=limit + 1
    )
    page = memberships[:limit]
    return MyTenantList(
        items=[
            MyTenant(id=m.tenant.id, slug=m.tenant.slug, name=m.tenant.name, role=m.role)
            for m in page
        ],
        next_cursor=page[-1].tenant.slug if len(memberships) > limit else None,
    )


@router.get("/{tenant}", responses=PROBLEMS)
def get_tenant(
    context: Annotated[TenantContext, requires(Permission.TENANT_READ)],
) -> MyTenant:
    """One tenant the caller belongs to, with the caller's role."""
    tenant = context.tenant
    return MyTenant(id=tenant.id, slug=tenant.slug, name=tenant.name, role=context.role)


@router.get("/{tenant}/members", responses=PROBLEMS)
def list_members(
    context: Annotated[TenantContext, requires(Permission.MEMBER_READ)],
    container: ContainerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=36)] = None,
) -> MemberList:
    """The tenant's members ordered by user id; ``cursor`` continues after the last page."""
    members = container.access.list_members(session, context, after=cursor, limit=limit + 1)
    page = members[:limit]
    return MemberList(
        items=[_member(m) for m in page],
        next_cursor=page[-1].user_id if len(members) > limit else None,
    )


@router.post("/{tenant}/members", status_code=status.HTTP_201_CREATED, responses=MEMBER_PROBLEMS)
def add_member(
    body: AddMemberRequest,
    context: Annotated[TenantContext, requires(Permission.MEMBER_ADD)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> MemberOut:
    """Add an existing user by id (interim, until invitations by e-mail land)."""
    member = container.access.add_member(
        session, context, user_id=body.user_id, role=body.role, client=client
    )
    return _member(member)


@router.patch("/{tenant}/members/{user}", responses=MEMBER_PROBLEMS)
def change_role(
    *,
    user: UserPath,
    body: ChangeRoleRequest,
    context: Annotated[TenantContext, requires(Permission.MEMBER_UPDATE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> MemberOut:
    """Change a member's role; effective on the member's very next request."""
    member = container.access.change_role(
        session, context, user_id=user, role=body.role, client=client
    )
    return _member(member)


@router.delete(
    "/{tenant}/members/{user}", status_code=status.HTTP_204_NO_CONTENT, responses=MEMBER_PROBLEMS
)
def remove_member(
    user: UserPath,
    context: Annotated[TenantContext, requires(Permission.MEMBER_REMOVE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """Remove a member; their very next request to this tenant is refused (404)."""
    container.access.remove_member(session, context, user_id=user, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
