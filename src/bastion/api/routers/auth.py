"""``/api/v1/auth``: sign-up, login, logout, e-mail verification, password forgot/reset.

Routes that hash or verify passwords are plain ``def``: Starlette runs them in its threadpool,
so argon2 never blocks the event loop (a unit test keeps them so).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from bastion.api.deps import (
    ClientDep,
    ContainerDep,
    EnrollingPrincipalDep,
    PrincipalDep,
    SameSiteOnly,
    SessionDep,
)
from bastion.api.routers.cookies import clear_session_cookies, set_session_cookies
from bastion.api.schemas.identity import (
    Accepted,
    AccountCreated,
    CodeRequest,
    ForgotPasswordRequest,
    LoginRequest,
    MfaRequest,
    ResetPasswordRequest,
    SessionToken,
    SignupRequest,
    VerifyEmailRequest,
)
from bastion.api.schemas.passkeys import AssertionRequest, PasskeyMfaOptionsRequest
from bastion.identity import IssuedSession

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
JSON = "application/json"

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated, or wrong credentials (one answer for all causes)."},
    403: {"description": "Sign-up closed, or a cross-site or CSRF-less request."},
    422: {"description": "Invalid input, or a password rule failed (the code names the rule)."},
}


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    dependencies=[SameSiteOnly],
    responses={**PROBLEMS, 409: {"description": "The e-mail address is registered."}},
)
def signup(
    body: SignupRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> AccountCreated:
    """Create an account (open sign-up by default) and mail a verification link."""
    account = container.identity.signup(
        session, email=body.email, password=body.password, name=body.name, client=client
    )
    return AccountCreated(id=account.id, email=account.email)


def session_response(issued: IssuedSession) -> Response:
    """``SessionToken`` JSON plus the session cookies, serialized here once. A returned model
    would be validated again by FastAPI, in a threadpool hop of its own (a sync route), on
    every login."""
    token = SessionToken(
        token=issued.token,
        expires_at=issued.expires_at,
        idle_expires_at=issued.idle_expires_at,
        csrf_token=issued.csrf_token,
    )
    response = Response(content=token.model_dump_json(), media_type=JSON)
    set_session_cookies(response, issued)
    return response


@router.post("/login", dependencies=[SameSiteOnly], response_model=SessionToken, responses=PROBLEMS)
def login(
    body: LoginRequest,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """A new session: the token in the body (for ``Authorization: Bearer``) and as a cookie.

    Unknown e-mail, wrong password and disabled account answer the same 401, in similar time.
    With a second factor enrolled: 401 problem ``.../mfa-required`` carrying ``mfa_token``.
    """
    issued = container.identity.login(
        session, email=body.email, password=body.password, client=client
    )
    return session_response(issued)


@router.post("/mfa", dependencies=[SameSiteOnly], response_model=SessionToken, responses=PROBLEMS)
def complete_mfa(
    body: MfaRequest,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """Finish a login with a TOTP code or a recovery code (each works once), or with a passkey
    assertion answering ``/api/v1/auth/mfa/passkey/options``."""
    if body.passkey is not None:
        issued = container.identity.complete_mfa_with_passkey(
            session, mfa_token=body.mfa_token, credential=body.passkey, client=client
        )
    else:
        issued = container.identity.complete_mfa(
            session, mfa_token=body.mfa_token, code=body.code or "", client=client
        )
    return session_response(issued)


@router.post("/mfa/passkey/options", dependencies=[SameSiteOnly], responses=PROBLEMS)
def passkey_mfa_options(
    body: PasskeyMfaOptionsRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> Response:
    """PublicKeyCredentialRequestOptions (JSON) for finishing this login with a passkey; the
    challenge is bound to the ``mfa_token``'s login and works once, for five minutes."""
    options = container.identity.begin_passkey_mfa(session, mfa_token=body.mfa_token, client=client)
    return Response(content=options, media_type=JSON)


@router.post("/passkey/options", dependencies=[SameSiteOnly], responses=PROBLEMS)
def passkey_login_options(container: ContainerDep, session: SessionDep) -> Response:
    """PublicKeyCredentialRequestOptions (JSON) for a passwordless login with a passkey."""
    return Response(content=container.identity.begin_passkey_login(session), media_type=JSON)


@router.post(
    "/passkey", dependencies=[SameSiteOnly], response_model=SessionToken, responses=PROBLEMS
)
def passkey_login(
    body: AssertionRequest,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """A new session for a passkey assertion with user verification (the passkey is both
    factors). A wrong or unknown passkey answers the same 401 as a wrong password."""
    issued = container.identity.login_with_passkey(
        session, credential=body.credential, client=client
    )
    return session_response(issued)


@router.post(
    "/step-up/passkey/options",
    responses={**PROBLEMS, 400: {"description": "The account has no passkey."}},
)
def passkey_step_up_options(
    principal: PrincipalDep, container: ContainerDep, session: SessionDep
) -> Response:
    """PublicKeyCredentialRequestOptions (JSON) for a step-up with a passkey in this session."""
    options = container.identity.begin_passkey_step_up(session, principal=principal)
    return Response(content=options, media_type=JSON)


@router.post(
    "/step-up/passkey",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 400: {"description": "The assertion does not verify."}},
)
def passkey_step_up(
    body: AssertionRequest,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> None:
    """Prove a passkey in this session (like ``/step-up`` with a code)."""
    container.identity.step_up_with_passkey(
        session, principal=principal, credential=body.credential, client=client
    )


@router.post(
    "/step-up",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**PROBLEMS, 400: {"description": "Wrong or spent code."}},
)
def step_up(
    body: CodeRequest,
    principal: PrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> None:
    """Prove a second factor in this session; sensitive actions are then allowed for a few
    minutes (``identity.step_up_seconds``)."""
    container.identity.step_up(session, principal=principal, code=body.code, client=client)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=PROBLEMS)
def logout(
    principal: EnrollingPrincipalDep,
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> Response:
    """End the current session; its token stops working at once."""
    container.identity.logout(session, principal=principal, client=client)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response)
    return response


@router.post("/email/verify", status_code=status.HTTP_204_NO_CONTENT, responses=PROBLEMS)
def verify_email(
    body: VerifyEmailRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> None:
    """Confirm an address with the token from the verification e-mail (single use)."""
    container.identity.verify_email(session, token=body.token, client=client)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[SameSiteOnly],
    responses=PROBLEMS,
)
def forgot_password(
    body: ForgotPasswordRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> Accepted:
    """Always 202: a reset link is mailed if, and only if, the address has an active account."""
    container.identity.request_password_reset(session, email=body.email, client=client)
    return Accepted(
        detail="If an account uses this address, a reset link valid for 30 minutes is on its way."
    )


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[SameSiteOnly],
    responses=PROBLEMS,
)
def reset_password(
    body: ResetPasswordRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> Response:
    """Set a new password with the e-mailed token; every session of the account ends."""
    container.identity.reset_password(
        session, token=body.token, password=body.password, client=client
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response)
    return response
