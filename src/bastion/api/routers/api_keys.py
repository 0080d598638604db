"""``/api/v1/tenants/{tenant}/api-keys``: create (secret shown once), list and revoke keys.

Creating needs API_KEY_MANAGE and a second factor proved in this session within the last
``identity.step_up_seconds`` (step-up): a key outlives the session that made it. An API key can
list and revoke (its permissions allowing) but never create keys.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from bastion.access import ApiKey, Permission, TenantContext
from bastion.api.access import requires
from bastion.api.deps import ClientDep, ContainerDep, CredentialDep, SessionDep
from bastion.api.schemas.api_keys import ApiKeyList, ApiKeyOut, CreateApiKeyRequest, CreatedApiKey

router = APIRouter(prefix="/api/v1/tenants/{tenant}/api-keys", tags=["api-keys"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session or API key."},
    403: {"description": "The caller's role (or key) lacks the permission (audited)."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}
KeyPath = Annotated[str, Path(min_length=1, max_length=36)]
MAX_PAGE = 200


def _out(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "tail": key.tail,
        "permissions": list(key.permissions),
        "created_by": key.created_by,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    }


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        **PROBLEMS,
        403: {"description": "No recent second factor (step-up), or the caller is a key."},
        409: {"description": "Too many live keys."},
        422: {"description": "Unknown permission, one beyond the caller's role, bad expiry."},
    },
)
def create_api_key(
    *,
    body: CreateApiKeyRequest,
    context: Annotated[TenantContext, requires(Permission.API_KEY_MANAGE)],
    principal: CredentialDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> CreatedApiKey:
    """A new key bound to this tenant with a subset of the caller's permissions; the secret
    (``key``) is in this answer only. Expires after ``expires_in_days`` or at ``expires_at``
    (default 90 days, at most 365)."""
    if not principal.is_api_key:  # a key is refused by the service, with its own problem
        container.identity.require_step_up(session, principal=principal)
    issued = container.api_keys.create(
        session,
        context,
        name=body.name,
        permissions=body.permissions,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        client=client,
    )
    return CreatedApiKey(**_out(issued.key), key=issued.secret)


@router.get("", responses=PROBLEMS)
def list_api_keys(
    context: Annotated[TenantContext, requires(Permission.API_KEY_READ)],
    container: ContainerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=36)] = None,
) -> ApiKeyList:
    """Unrevoked keys by id: the caller's own, or every member's for owners and admins
    (MEMBER_REMOVE). Never the secret: ``prefix`` and ``tail`` identify a key."""
    keys = container.api_keys.list_keys(session, context, after=cursor, limit=limit + 1)
    page = keys[:limit]
    return ApiKeyList(
        items=[ApiKeyOut(**_out(key)) for key in page],
        next_cursor=page[-1].id if len(keys) > limit else None,
    )


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 404: {"description": "No such key of this tenant for the caller."}},
)
def revoke_api_key(
    key_id: KeyPath,
    context: Annotated[TenantContext, requires(Permission.API_KEY_MANAGE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """Revoke a key: its very next request is refused (401), in every server process."""
    container.api_keys.revoke(session, context, key_id=key_id, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
