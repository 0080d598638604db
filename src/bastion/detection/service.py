"""What the e-mailed links do: unlock an account early, or "this wasn't me".

``Detection.report`` is P25: it locks sign-in until the password is reset, has identity end
every session (and every credential hanging on them) and mail a reset link, and records a HIGH
security event, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from bastion.alerts.types import SecurityEvent, SecurityEvents, Severity
from bastion.audit import AuditEvent, AuditLog
from bastion.detection import devices, links, repository
from bastion.detection.links import LinkPurpose
from bastion.identity.types import ClientInfo
from bastion.kernel.clock import Clock, as_utc


@dataclass(frozen=True, slots=True)
class Block:
    """A blocked source as an operator sees it."""

    source: str
    reason: str
    blocked_at: datetime
    blocked_until: datetime


class AccountRevoker(Protocol):
    """The identity service's "revoke everything" (``Identity.report_compromise``)."""

    def report_compromise(self, session: Session, *, user_id: str, client: ClientInfo) -> int: ...


class Detection:
    """The link flows of detection; the login checks themselves are ``SqlLoginGuard``."""

    def __init__(
        self,
        *,
        accounts: AccountRevoker,
        events: SecurityEvents,
        audit_log: AuditLog,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._events = events
        self._audit = audit_log
        self._clock = clock

    def unlock(self, session: Session, *, token: str, client: ClientInfo) -> None:
        """End a failures lock with the e-mailed unlock link (single use). Raises LinkInvalid.
        A "this wasn't me" lock is not ended this way: only a password reset ends it."""
        now = self._clock.now()
        user_id, issued_at = links.redeem(session, token=token, purpose=LinkPurpose.UNLOCK, now=now)
        lock = repository.active_lock(session, user_id, now=now, password_changed_at=None)
        released = False
        # A link ends the lock it was mailed for, never a later one: an old, unused link (or a
        # copy an attacker kept) must not lift a lock that new failures have just set.
        if (
            lock is not None
            and lock.reason == repository.REASON_FAILURES
            and as_utc(lock.locked_at) <= issued_at
        ):
            released = repository.release(session, user_id, now=now)
        self._audit.append(
            session,
            AuditEvent(
                action="detection.account_unlocked",
                actor_user_id=user_id,
                target=user_id,
                source_ip=client.ip,
                user_agent=client.user_agent,
                request_id=client.request_id,
                details={"released": released},
            ),
        )

    # -- operator actions (CLI) -------------------------------------------------------------

    def blocks(self, session: Session) -> list[Block]:
        """The sources blocked now, oldest first."""
        return [
            Block(row.source, row.reason, as_utc(row.blocked_at), as_utc(row.blocked_until))
            for row in repository.active_blocks(session, now=self._clock.now())
        ]

    def unblock(self, session: Session, *, address: str, actor_user_id: str | None) -> bool:
        """End the block of ``address`` (an IPv6 address ends the block of its /64) at once;
        False if none was in force. Audited on the system chain either way."""
        source = devices.source_of(address)
        ended = repository.unblock(session, source, now=self._clock.now())
        self._audit.append(
            session,
            AuditEvent(
                action="detection.source_unblocked",
                actor_user_id=actor_user_id,
                target=source,
                details={"ended": ended},
            ),
        )
        return ended

    def release(self, session: Session, *, user_id: str, actor_user_id: str | None) -> bool:
        """End any lock of ``user_id`` at once, a "this wasn't me" lock included (an operator
        who has checked with the owner); False if there was none to release. Audited."""
        released = repository.release(session, user_id, now=self._clock.now())
        self._audit.append(
            session,
            AuditEvent(
                action="detection.lock_released",
                actor_user_id=actor_user_id,
                target=user_id,
                details={"released": released},
            ),
        )
        return released

    def report(self, session: Session, *, token: str, client: ClientInfo) -> int:
        """ "This wasn't me" (single-use link from a new-device e-mail): sign-in is locked until
        the password is reset, every session of the account ends before this returns, a reset
        link is mailed, and a HIGH security event is recorded. Returns the sessions revoked.
        Raises LinkInvalid."""
        now = self._clock.now()
        user_id, _ = links.redeem(session, token=token, purpose=LinkPurpose.REPORT, now=now)
        repository.lock(
            session, user_id, reason=repository.REASON_REPORTED, failures=0, now=now, until=None
        )
        killed = self._accounts.report_compromise(session, user_id=user_id, client=client)
        self._events.record(
            session,
            SecurityEvent(
                type="login.reported",
                severity=Severity.HIGH,
                subject=user_id,
                source=client.ip,
                details={"sessions_revoked": killed},
            ),
        )
        return killed
