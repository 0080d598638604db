"""``/api/v1/operator/keys``: the keyring's state and data-key rotation, for operators.

Operators (with a second factor) see versions, counters and unfinished work, and rotate or
re-encrypt a tenant's data key; they never see key material or tenant data through these routes
(re-encryption opens and re-seals values inside the server and answers counts). Each call is
audited on the system chain with the operator as actor; a rotation is also recorded on the
tenant's own chain by the keyring, in the rotation's transaction.

Master-key (KEK) rotation is CLI-only (``bastion keys rotate-kek``), on purpose: it needs the new
master key (a file, or an HSM label) installed where every process's settings point, and every
other Bastion process keeps the old key in memory until restarted, so no single HTTP request can
make it safe (see docs/keys.md).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query

from bastion.api.access import operator
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.keys import (
    KeyringStatusOut,
    KeyVersionOut,
    ReencryptedOut,
    ReencryptedTarget,
    RotatedOut,
    SystemReencryptedOut,
    SystemRotatedOut,
    TenantKeyRequest,
    TenantKeysList,
    TenantKeysOut,
)
from bastion.audit import AuditEvent
from bastion.crypto import ReencryptionReport
from bastion.errors import InvalidInput
from bastion.identity import ClientInfo, Principal

router = APIRouter(prefix="/api/v1/operator/keys", tags=["operator"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "Not an operator with a second factor, or CSRF."},
}
CHANGE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    404: {"description": "The tenant has no data key."},
    409: {"description": "A concurrent key change won; retry."},
    410: {"description": "The tenant was crypto-shredded."},
    422: {"description": 'The body is not {"tenant": <tenant id>}.'},
}
SYSTEM_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    409: {"description": "A concurrent key change won; retry."},
}
MAX_CURSOR_CHARS: Final = 64


class InvalidKeyCursor(InvalidInput):
    code = "crypto.invalid_cursor"
    public_message = "The pagination cursor is not valid."


def _event(
    action: str, principal: Principal, client: ClientInfo, **details: str | int
) -> AuditEvent:
    # The system chain (tenant_id None): these are the service's own actions, by an operator.
    return AuditEvent(
        action=action,
        actor_user_id=principal.user_id,
        source_ip=client.ip,
        user_agent=client.user_agent,
        request_id=client.request_id,
        details=details,
    )


def _encode_cursor(tenant: str) -> str:
    return base64.urlsafe_b64encode(tenant.encode()).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        tenant = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidKeyCursor from None
    if not tenant or len(tenant) > MAX_CURSOR_CHARS:
        raise InvalidKeyCursor
    return tenant


@router.get("", responses=PROBLEMS)
def keyring_status(
    principal: Annotated[Principal, operator(own_transaction=True)],
    container: ContainerDep,
    client: ClientDep,
) -> KeyringStatusOut:
    """Master key id (and whether a master-key rotation is unfinished), system key versions,
    and totals: tenants with keys, superseded versions awaiting re-encryption, unfinished
    re-encryption passes, the most-used active key's reserved encryptions against 2^32."""
    status = container.keyring.status()
    container.read_audit.record(_event("operator.keys_viewed", principal, client))
    return KeyringStatusOut.of(status)


@router.get("/tenants", responses={**PROBLEMS, 400: {"description": "A bad cursor."}})
def tenant_keys(
    principal: Annotated[Principal, operator(own_transaction=True)],
    container: ContainerDep,
    client: ClientDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> TenantKeysList:
    """Per tenant, by id: data-key versions with their counters, the active one, the superseded
    ones still awaiting re-encryption and retirement, and re-encryption progress."""
    after = None if cursor is None else _decode_cursor(cursor)
    found = container.keyring.tenant_key_statuses(after=after, limit=limit + 1)
    page = found[:limit]
    container.read_audit.record(
        _event("operator.key_status_listed", principal, client, tenants=len(page))
    )
    return TenantKeysList(
        items=[TenantKeysOut.of(status) for status in page],
        next_cursor=_encode_cursor(page[-1].tenant) if len(found) > limit else None,
    )


@router.post("/rotate", responses=CHANGE_PROBLEMS)
def rotate_tenant_key(
    body: TenantKeyRequest,
    principal: Annotated[Principal, operator(own_transaction=True)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> RotatedOut:
    """Start a new data-key version for the tenant: new writes use it at once, older versions
    keep decrypting until re-encrypted (``/reencrypt``) and retired (CLI)."""
    version = container.keyring.rotate(body.tenant)
    container.audit_log.append(
        session,
        _event(
            "operator.key_rotated", principal, client, tenant=body.tenant, version=version.version
        ),
    )
    return RotatedOut(tenant=body.tenant, version=KeyVersionOut.of(version))


@router.post("/reencrypt", responses=CHANGE_PROBLEMS)
def reencrypt_tenant(
    body: TenantKeyRequest,
    principal: Annotated[Principal, operator(own_transaction=True)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> ReencryptedOut:
    """Re-seal the tenant's values older than its active version, in every registered store.
    Resumable (progress is saved after each batch): call again after an interruption. Answers
    counts only."""
    reports = container.keyring.reencrypt(body.tenant)
    container.audit_log.append(
        session,
        _event(
            "operator.keys_reencrypted",
            principal,
            client,
            tenant=body.tenant,
            rows_reencrypted=sum(report.rows_reencrypted for report in reports),
        ),
    )
    return ReencryptedOut(tenant=body.tenant, targets=_targets(reports))


def _targets(reports: list[ReencryptionReport]) -> list[ReencryptedTarget]:
    return [
        ReencryptedTarget(
            target=report.target,
            to_version=report.to_version,
            rows_scanned=report.rows_scanned,
            rows_reencrypted=report.rows_reencrypted,
            finished=report.finished,
        )
        for report in reports
    ]


@router.post("/system/rotate", responses=SYSTEM_PROBLEMS)
def rotate_system_key(
    principal: Annotated[Principal, operator(own_transaction=True)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> SystemRotatedOut:
    """Start a new version of the system data key (Bastion's own secrets: e-mail addresses, TOTP
    secrets, queued mail, invitations); older versions keep decrypting until re-encrypted
    (``/system/reencrypt``) and retired (CLI: ``bastion keys retire --system``)."""
    version = container.keyring.rotate_system_key()
    container.audit_log.append(
        session,
        _event("operator.system_key_rotated", principal, client, version=version.version),
    )
    return SystemRotatedOut(version=KeyVersionOut.of(version))


@router.post("/system/reencrypt", responses=SYSTEM_PROBLEMS)
def reencrypt_system(
    principal: Annotated[Principal, operator(own_transaction=True)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> SystemReencryptedOut:
    """Re-seal system-sealed values older than the active system data key, in every registered
    column. Resumable (progress is saved after each batch). Answers counts only."""
    reports = container.keyring.reencrypt_system()
    container.audit_log.append(
        session,
        _event(
            "operator.system_keys_reencrypted",
            principal,
            client,
            rows_reencrypted=sum(report.rows_reencrypted for report in reports),
        ),
    )
    return SystemReencryptedOut(targets=_targets(reports))
