"""Single-use e-mailed tokens (verification, password reset): issued, stored as SHA-256, redeemed.

A token is 256 random bits; only its digest is stored. Issuing a new one retires the user's
unused ones of the same purpose, so only the newest link works. Redemption is a conditional
UPDATE, so two concurrent uses cannot both succeed. Unknown, used, expired and wrong-purpose
tokens all raise the same TokenInvalid.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from bastion.identity import repository
from bastion.identity.errors import TokenInvalid
from bastion.identity.models import EmailToken
from bastion.identity.sessions import MAX_TOKEN_CHARS
from bastion.identity.types import TokenPurpose
from bastion.kernel.clock import as_utc
from bastion.kernel.ids import new_id, new_token, token_digest


def issue(
    session: Session,
    *,
    user_id: str,
    purpose: TokenPurpose,
    now: datetime,
    lifetime: timedelta,
    token_id: str | None = None,
    payload_sealed: bytes | None = None,
    token: str | None = None,
) -> str:
    """A new token (``token_id`` when the caller sealed a payload to it beforehand; ``token``
    when the caller drew it beforehand, e.g. to seal the e-mail carrying it before any write)."""
    repository.retire_email_tokens(session, user_id, purpose, now)
    token = token or new_token()
    session.add(
        EmailToken(
            id=token_id or new_id(),
            user_id=user_id,
            purpose=str(purpose),
            token_hash=token_digest(token),
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
            payload_sealed=payload_sealed,
        )
    )
    session.flush()
    return token


def redeem(
    session: Session,
    *,
    token: str,
    purpose: TokenPurpose | tuple[TokenPurpose, ...],
    now: datetime,
) -> EmailToken:
    """Consume ``token`` for ``purpose`` (or any of several), or TokenInvalid."""
    purposes = {str(p) for p in (purpose if isinstance(purpose, tuple) else (purpose,))}
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenInvalid
    digest = token_digest(token)
    row = repository.email_token_by_hash(session, digest)
    if (
        row is None
        or not hmac.compare_digest(row.token_hash, digest)
        or row.purpose not in purposes
        or row.used_at is not None
        or as_utc(row.expires_at) <= now
    ):
        raise TokenInvalid
    result = session.execute(
        update(EmailToken)
        .where(EmailToken.id == row.id, EmailToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        raise TokenInvalid
    return row
