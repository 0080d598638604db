"""``/api/v1/operator/users``: staff actions on accounts (operators with a second factor)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from bastion.api.access import operator
from bastion.api.deps import ClientDep, ContainerDep, SessionDep
from bastion.api.schemas.passkeys import SessionsRevoked
from bastion.identity import Principal

router = APIRouter(prefix="/api/v1/operator/users", tags=["operator"])

# An id only: request paths are logged, and an e-mail address must never reach a log line
# (`bastion users revoke-sessions` takes an address on the console instead).
UserPath = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


@router.post(
    "/{user}/sessions/revoke",
    responses={
        401: {"description": "No valid session."},
        403: {"description": "Not an operator with a second factor, or CSRF."},
        404: {"description": "No such user."},
    },
)
def revoke_user_sessions(
    user: UserPath,
    principal: Annotated[Principal, operator()],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
) -> SessionsRevoked:
    """End every session, half-finished login and API key of the user with id ``user`` before
    answering: each fails on its very next request. Audited on the system
    chain with the operator as actor."""
    revoked = container.identity.revoke_user_sessions(
        session, user=user, actor_user_id=principal.user_id, client=client
    )
    return SessionsRevoked(
        sessions_revoked=revoked.sessions, api_keys_revoked=revoked.other_credentials
    )
