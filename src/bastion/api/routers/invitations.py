"""Invitations by e-mail: ``POST /api/v1/tenants/{tenant}/invitations`` (owners and admins) and
``POST /api/v1/invitations/{token}/accept`` (the signed-in invitee)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from bastion.access import Permission, TenantContext
from bastion.api.access import authenticated, requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.access import (
    AcceptedInvitation,
    InvitationList,
    InvitationOut,
    InviteRequest,
    TenantOut,
)
from bastion.identity import Principal

router = APIRouter(tags=["invitations"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "The caller's role lacks the permission (audited)."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}
MAX_PAGE = 200
InvitationPath = Annotated[str, Path(min_length=1, max_length=36)]
TokenPath = Annotated[str, Path(min_length=20, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post(
    "/api/v1/tenants/{tenant}/invitations",
    status_code=status.HTTP_201_CREATED,
    responses=PROBLEMS,
)
def invite(
    body: InviteRequest,
    context: Annotated[TenantContext, requires(Permission.MEMBER_INVITE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> InvitationOut:
    """E-mail a single-use invitation (valid 7 days) to join with ``role``."""
    invitation = container.invitations.invite(
        session, context, email=body.email, role=body.role, client=client
    )
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        expires_at=invitation.expires_at,
    )


@router.get("/api/v1/tenants/{tenant}/invitations", responses=PROBLEMS)
def list_invitations(
    context: Annotated[TenantContext, requires(Permission.INVITATION_READ)],
    container: ContainerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=36)] = None,
) -> InvitationList:
    """Pending invitations (not accepted, not expired), by id; ``cursor`` continues a page."""
    found = container.invitations.pending(session, context, after=cursor, limit=limit + 1)
    page = found[:limit]
    return InvitationList(
        items=[
            InvitationOut(id=i.id, email=i.email, role=i.role, expires_at=i.expires_at)
            for i in page
        ],
        next_cursor=page[-1].id if len(found) > limit else None,
    )


@router.delete(
    "/api/v1/tenants/{tenant}/invitations/{invitation}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=PROBLEMS,
)
def revoke_invitation(
    invitation: InvitationPath,
    context: Annotated[TenantContext, requires(Permission.INVITATION_REVOKE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """Withdraw a pending invitation; its token stops working at once."""
    container.invitations.revoke(session, context, invitation_id=invitation, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/invitations/{token}/accept",
    responses={
        400: {"description": "Unknown, used or expired invitation, or another address."},
        401: {"description": "No valid session."},
        409: {"description": "Already a member."},
    },
)
def accept(
    token: TokenPath,
    principal: Annotated[Principal, authenticated()],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> AcceptedInvitation:
    """Join the tenant as the signed-in account the invitation was sent to."""
    account = container.identity.account(session, principal=principal)
    context = container.invitations.accept(
        session, token=token, user_id=principal.user_id, email=account.email, client=client
    )
    tenant = context.tenant
    return AcceptedInvitation(
        tenant=TenantOut(id=tenant.id, slug=tenant.slug, name=tenant.name), role=context.role
    )
