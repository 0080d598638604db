"""``/api/v1/auth/unlock`` and ``/api/v1/auth/report-login``: the links detection e-mails.

Public (the token is the credential), cross-site refused, rate-limited as auth requests. Plain
``def``: they write in one transaction like every identity route.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from bastion.api.access import public
from bastion.api.deps import ClientDep, ContainerDep, SameSiteOnly, SessionDep
from bastion.api.schemas.detection import LinkRequest, Reported

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Unknown, used or expired link (one answer for all)."},
    403: {"description": "A cross-site request."},
    422: {"description": "Invalid input."},
    429: {"description": "Too many authentication requests from this address."},
}


@router.post(
    "/unlock",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[public(), SameSiteOnly],
    responses=PROBLEMS,
)
def unlock(
    body: LinkRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> None:
    """End a lockout early with the token from the "account locked" e-mail (single use)."""
    container.detection.unlock(session, token=body.token, client=client)


@router.post(
    "/report-login",
    dependencies=[public(), SameSiteOnly],
    responses=PROBLEMS,
)
def report_login(
    body: LinkRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> Reported:
    """ "This wasn't me", with the token from a new-sign-in e-mail: every session and API key of
    the account ends before this answers, sign-in is locked until the password is reset, a reset
    link is mailed, and a high-severity security event is recorded."""
    killed = container.detection.report(session, token=body.token, client=client)
    return Reported(
        sessions_revoked=killed,
        detail="Every session and API key of the account has ended. Reset the password with "
        "the link on its way to the account's address; signing in is blocked until then.",
    )
