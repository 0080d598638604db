"""The first-operator bootstrap link printed on the very first start."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from bastion.api.deps import ClientDep, ContainerDep, SameSiteOnly, SessionDep
from bastion.api.schemas.identity import AccountCreated, BootstrapRequest

router = APIRouter(tags=["bootstrap"])

TokenQuery = Annotated[str, Query(min_length=20, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
BOOTSTRAP_API_PATH = "/api/v1/bootstrap"


class BootstrapInstructions(BaseModel):
    status: str
    expires_at: datetime
    method: str
    path: str
    body: dict[str, str]
    detail: str


@router.get("/bootstrap", responses={401: {"description": "Unknown, used or expired link."}})
def bootstrap_link(
    token: TokenQuery, container: ContainerDep, session: SessionDep
) -> BootstrapInstructions:
    """Check the single-use token (without using it) and say what to POST to redeem it."""
    link = container.first_operator.check(session, token)
    return BootstrapInstructions(
        status="valid",
        expires_at=link.expires_at,
        method="POST",
        path=BOOTSTRAP_API_PATH,
        body={
            "token": "this link's token",
            "email": "the operator's e-mail address",
            "password": "12 to 256 characters, not a common or guessable one",
            "name": "optional display name",
        },
        detail="POST these fields as JSON to create the first operator account; the link then "
        "stops working.",
    )


@router.post(
    BOOTSTRAP_API_PATH,
    status_code=status.HTTP_201_CREATED,
    dependencies=[SameSiteOnly],
    responses={
        401: {"description": "Unknown, used or expired link."},
        409: {"description": "An operator exists already."},
        422: {"description": "Invalid input, or a password rule failed."},
    },
)
def create_first_operator(
    body: BootstrapRequest, container: ContainerDep, session: SessionDep, client: ClientDep
) -> AccountCreated:
    """Create the first operator and redeem the token, in one transaction (single use)."""
    account = container.identity.create_first_operator(
        session,
        bootstrap_token=body.token,
        email=body.email,
        password=body.password,
        name=body.name,
        client=client,
    )
    return AccountCreated(id=account.id, email=account.email)
