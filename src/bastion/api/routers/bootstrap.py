"""The first-operator bootstrap link printed on the very first start."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bastion.api.deps import ContainerDep, SessionDep
from bastion.errors import NotImplementedYet

router = APIRouter(tags=["bootstrap"])

TokenQuery = Annotated[str, Query(min_length=20, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/bootstrap", responses={501: {"description": "Token valid; accounts not built yet."}})
def bootstrap(token: TokenQuery, container: ContainerDep, session: SessionDep) -> None:
    """Check the single-use bootstrap token; creating the operator needs the identity domain.

    An unknown, used, revoked or expired token answers 401. A valid one is *not* consumed while
    operator accounts cannot be created yet, and the answer says so.
    """
    link = container.first_operator.check(session, token)
    raise NotImplementedYet(
        "The bootstrap link is valid, but creating the first operator account is not available "
        "yet: it arrives with the identity work. The link stays unused.",
        expires_at=link.expires_at.isoformat(),
    )
