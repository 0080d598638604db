"""``/api/v1/tenants/{tenant}/settings``: the tenant's access policy.

Members read it (``access:tenant:read``); changing it needs ``access:tenant:update`` (owners; no
custom role can hold it). The policy applies from the very next request, in every process.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from bastion.access import Permission, TenantContext
from bastion.access.policy import PolicyChange, TenantPolicy
from bastion.api.access import requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.governance import SettingsOut, SettingsPatch

router = APIRouter(prefix="/api/v1/tenants/{tenant}/settings", tags=["tenant settings"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "Outside the allow-list, MFA required, or the role lacks it (audited)."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}


def _out(policy: TenantPolicy) -> SettingsOut:
    return SettingsOut(
        require_mfa=policy.require_mfa,
        ip_allowlist=list(policy.ip_allowlist),
        break_glass_requires_approval=policy.break_glass_requires_approval,
    )


@router.get("", responses=PROBLEMS)
def get_settings(
    context: Annotated[TenantContext, requires(Permission.TENANT_READ)],
    container: ContainerDep,
    session: SessionDep,
) -> SettingsOut:
    """The tenant's settings (defaults until an owner changes them)."""
    return _out(container.governance.policies.get(session, context))


@router.patch(
    "",
    responses={
        **PROBLEMS,
        409: {"description": "The change would lock the caller out; send confirm_lockout."},
        422: {"description": "A bad CIDR (host bits set, not a network) or over 100 entries."},
    },
)
def update_settings(
    body: SettingsPatch,
    context: Annotated[TenantContext, requires(Permission.TENANT_SETTINGS_UPDATE)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> SettingsOut:
    """Change some settings; fields left out keep their value. Audited with before and after."""
    change = PolicyChange(
        require_mfa=body.require_mfa,
        ip_allowlist=None if body.ip_allowlist is None else tuple(body.ip_allowlist),
        break_glass_requires_approval=body.break_glass_requires_approval,
        confirm_lockout=body.confirm_lockout,
    )
    policy = container.governance.policies.update(session, context, change, client=client)
    return _out(policy)
