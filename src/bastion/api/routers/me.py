"""``/api/v1/me``: the caller's account, password, sessions and second factors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from bastion.api.deps import (
    ClientDep,
    ContainerDep,
    EnrollingPrincipalDep,
    PrincipalDep,
    SessionDep,
)
from bastion.api.routers.cookies import clear_session_cookies, set_session_cookies
from bastion.api.schemas.identity import (
    Accepted,
    Account,
    ChangeEmailRequest,
    ChangePasswordRequest,
    CodeRequest,
    RecoveryCodes,
    SessionItem,
    SessionList,
    SessionToken,
    TotpEnrolment,
)
from bastion.api.schemas.passkeys import Passkey, PasskeyList, RegisterPasskeyRequest
from bastion.identity.types import PasskeyInfo

router = APIRouter(prefix="/api/v1/me", tags=["me"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "Cookie-authenticated write without X-CSRF-Token."},
}
SessionPath = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


@router.get("", responses=PROBLEMS)
def me(principal: EnrollingPrincipalDep, container: ContainerDep, session: SessionDep) -> Account:
    """The caller's account."""
    account = container.identity.account(session, principal=principal)
    return Account(
        id=account.id,
        email=account.email,
        name=account.name,
        is_operator=account.is_operator,
        email_verified=account.email_verified,
        mfa_enabled=account.mfa_enabled,
        created_at=account.created_at,
    )


@router.post(
    "/password",
    responses={**PROBLEMS, 422: {"description": "Wrong current password or a rule failed."}},
)
def change_password(
    *,
    body: ChangePasswordRequest,
    response: Response,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> SessionToken:
    """Change the password (the current one is required). Every session ends, this one
    included, and a new session is returned (new token after a privilege change)."""
    issued = container.identity.change_password(
        session,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
        client=client,
    )
    set_session_cookies(response, issued)
    return SessionToken(
        token=issued.token,
        expires_at=issued.expires_at,
        idle_expires_at=issued.idle_expires_at,
        csrf_token=issued.csrf_token,
    )


@router.get("/sessions", responses=PROBLEMS)
def list_sessions(
    principal: PrincipalDep, container: ContainerDep, session: SessionDep
) -> SessionList:
    """The caller's live sessions, newest first (one page: a user has few)."""
    items = container.identity.list_sessions(session, principal=principal)
    return SessionList(
        items=[
            SessionItem(
                id=item.id,
                created_at=item.created_at,
                last_seen_at=item.last_seen_at,
                expires_at=item.expires_at,
                ip=item.ip,
                user_agent=item.user_agent,
                current=item.current,
            )
            for item in items
        ]
    )


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 404: {"description": "Not one of the caller's live sessions."}},
)
def revoke_session(
    session_id: SessionPath,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """End one session; its token fails on the very next request."""
    container.identity.revoke_session(
        session, principal=principal, session_id=session_id, client=client
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if session_id == principal.session_id:
        clear_session_cookies(response)
    return response


@router.delete("/sessions", status_code=status.HTTP_204_NO_CONTENT, responses=PROBLEMS)
def revoke_all_sessions(
    principal: PrincipalDep, container: ContainerDep, session: SessionDep, client: ClientDep
) -> Response:
    """End every session of the caller, this one included."""
    container.identity.revoke_all_sessions(session, principal=principal, client=client)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response)
    return response


@router.post("/totp", responses={**PROBLEMS, 409: {"description": "TOTP is already enabled."}})
def begin_totp(
    principal: EnrollingPrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> TotpEnrolment:
    """Start authenticator enrolment: the secret, its otpauth:// URI and an SVG QR code."""
    enrolment = container.identity.begin_totp(session, principal=principal, client=client)
    return TotpEnrolment(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
    )


@router.delete(
    "/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **PROBLEMS,
        403: {"description": "No second factor proved recently (step-up) or CSRF."},
        409: {"description": "TOTP is not enabled."},
    },
)
def disable_totp(
    principal: PrincipalDep, container: ContainerDep, session: SessionDep, client: ClientDep
) -> None:
    """Turn the authenticator off (recovery codes too). Needs a step-up within a few minutes."""
    container.identity.disable_totp(session, principal=principal, client=client)


@router.post(
    "/totp/confirm",
    responses={
        **PROBLEMS,
        400: {"description": "Wrong code."},
        409: {"description": "Nothing pending."},
    },
)
def confirm_totp(
    body: CodeRequest,
    principal: EnrollingPrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> RecoveryCodes:
    """Enable TOTP with a code from the app; answers ten single-use recovery codes."""
    codes = container.identity.confirm_totp(
        session, principal=principal, code=body.code, client=client
    )
    return RecoveryCodes(recovery_codes=codes)


@router.post(
    "/recovery-codes",
    responses={**PROBLEMS, 400: {"description": "Wrong code."}, 409: {"description": "No TOTP."}},
)
def regenerate_recovery_codes(
    body: CodeRequest,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> RecoveryCodes:
    """Ten new recovery codes (earlier ones stop working); needs a current TOTP code."""
    codes = container.identity.regenerate_recovery_codes(
        session, principal=principal, code=body.code, client=client
    )
    return RecoveryCodes(recovery_codes=codes)


@router.post(
    "/email",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **PROBLEMS,
        400: {"description": "Wrong password."},
        403: {"description": "A second factor is on and no step-up is recent (or CSRF)."},
        409: {"description": "The address is registered."},
    },
)
def request_email_change(
    body: ChangeEmailRequest,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Accepted:
    """Ask to change the address; it changes when the token mailed there is confirmed at
    ``POST /api/v1/auth/email/verify``. The old address gets a notice."""
    container.identity.request_email_change(
        session, principal=principal, new_email=body.email, password=body.password, client=client
    )
    return Accepted(detail="A confirmation link is on its way to the new address.")


PasskeyPath = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


def _passkey(info: PasskeyInfo) -> Passkey:
    return Passkey(
        id=info.id,
        name=info.name,
        transports=list(info.transports),
        aaguid=info.aaguid,
        created_at=info.created_at,
        last_used_at=info.last_used_at,
    )


@router.post(
    "/passkeys/options",
    responses={
        **PROBLEMS,
        403: {"description": "A second factor exists and no step-up is recent."},
    },
)
def passkey_registration_options(
    principal: EnrollingPrincipalDep, container: ContainerDep, session: SessionDep
) -> Response:
    """PublicKeyCredentialCreationOptions (JSON) for registering a passkey. Adding a factor to
    an account that has one needs a recent step-up."""
    options = container.identity.begin_passkey_registration(session, principal=principal)
    return Response(content=options, media_type="application/json")


@router.post(
    "/passkeys",
    status_code=status.HTTP_201_CREATED,
    responses={
        **PROBLEMS,
        400: {"description": "The attestation does not verify (challenge, origin, RP id...)."},
        409: {"description": "This authenticator is registered already."},
    },
)
def register_passkey(
    body: RegisterPasskeyRequest,
    principal: EnrollingPrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Passkey:
    """Register the passkey the attestation proves, under ``name``."""
    info = container.identity.finish_passkey_registration(
        session, principal=principal, credential=body.credential, name=body.name, client=client
    )
    return _passkey(info)


@router.get("/passkeys", responses=PROBLEMS)
def list_passkeys(
    principal: PrincipalDep, container: ContainerDep, session: SessionDep
) -> PasskeyList:
    """The caller's passkeys, oldest first (one page: at most 20)."""
    return PasskeyList(
        items=[_passkey(i) for i in container.identity.list_passkeys(session, principal=principal)]
    )


@router.delete(
    "/passkeys/{passkey_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **PROBLEMS,
        403: {"description": "No second factor proved recently (step-up) or CSRF."},
        404: {"description": "Not one of the caller's passkeys."},
    },
)
def delete_passkey(
    passkey_id: PasskeyPath,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> None:
    """Remove a passkey. Needs a step-up within a few minutes, like turning TOTP off."""
    container.identity.delete_passkey(
        session, principal=principal, passkey_id=passkey_id, client=client
    )
