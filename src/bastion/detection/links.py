"""Single-use e-mailed links of detection (unlock, "this wasn't me"): 256 random bits, stored as
SHA-256, redeemed with a conditional UPDATE so two concurrent uses cannot both succeed. Unknown,
used, expired and wrong-purpose tokens raise the same LinkInvalid."""

from __future__ import annotations

import enum
import hmac
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bastion.detection.errors import LinkInvalid
from bastion.detection.models import DetectionLink
from bastion.kernel.clock import as_utc
from bastion.kernel.ids import new_id, new_token, token_digest

# Tokens from new_token() are 43 characters; anything much longer is not ours.
MAX_TOKEN_CHARS = 128


class LinkPurpose(enum.StrEnum):
    UNLOCK = "unlock"
    REPORT = "report"


class Redeemed(NamedTuple):
    """Whose link it was, and when it was issued (a link answers only what preceded it)."""

    user_id: str
    issued_at: datetime


def new_link_token() -> str:
    """A fresh token, made before the mail that carries it is sealed (the row comes later)."""
    return new_token()


def store(
    session: Session,
    *,
    token: str,
    user_id: str,
    purpose: LinkPurpose,
    now: datetime,
    lifetime: timedelta,
) -> None:
    """Store the digest of ``token`` (from ``new_link_token``) as a link of ``user_id``."""
    session.add(
        DetectionLink(
            id=new_id(),
            user_id=user_id,
            purpose=str(purpose),
            token_hash=token_digest(token),
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
        )
    )
    session.flush()


def redeem(session: Session, *, token: str, purpose: LinkPurpose, now: datetime) -> Redeemed:
    """Consume ``token`` for ``purpose``; whom and when it was issued to, or LinkInvalid."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise LinkInvalid
    digest = token_digest(token)
    row = session.scalars(select(DetectionLink).where(DetectionLink.token_hash == digest)).first()
    if (
        row is None
        or not hmac.compare_digest(row.token_hash, digest)
        or row.purpose != str(purpose)
        or row.used_at is not None
        or as_utc(row.expires_at) <= now
    ):
        raise LinkInvalid
    result = session.execute(
        update(DetectionLink)
        .where(DetectionLink.id == row.id, DetectionLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        raise LinkInvalid
    return Redeemed(user_id=row.user_id, issued_at=as_utc(row.created_at))
