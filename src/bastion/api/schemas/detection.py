"""Shapes of the detection routes (unlock link, "this wasn't me" link)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bastion.api.schemas.identity import Token


class LinkRequest(BaseModel):
    """The token of an e-mailed link (single use)."""

    model_config = ConfigDict(extra="forbid")

    token: Token


class Reported(BaseModel):
    """What "this wasn't me" did: sessions ended; sign-in stays locked until a password reset
    (a reset link is on its way to the account's address)."""

    model_config = ConfigDict(extra="forbid")

    sessions_revoked: int
    detail: str
