"""``SqlLoginGuard``: identity's ``LoginGuard`` implemented with sliding windows and tables.

Per attempt (docs/detection.md has the reasoning):

- before the password is checked: a blocked source answers 429; a locked account is refused
  like a wrong password; then the attempt takes a slot in the account's window *before* the
  password is verified, so concurrent attempts, in any number of processes sharing the counters,
  never get more than ``account_failure_limit`` verifications per window;
- after a failure: a progressive delay; the account is locked at the limit (the lock lives in the
  database, survives restarts and is seen by every process); the source's failures and the
  number of distinct accounts failing from it are counted, and either limit blocks the source;
- after a success: the account's window is cleared; once the login is complete, an unknown
  (user-agent family, network) gets an e-mail with a "this wasn't me" link.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

from bastion.alerts.types import SecurityEvent, SecurityEvents, Severity
from bastion.detection import devices, links, messages, repository
from bastion.detection.counters import Counters, window
from bastion.detection.errors import CountersUnavailable, SourceBlocked
from bastion.detection.links import LinkPurpose
from bastion.identity.guard import Admission, LoginAttempt, SignedIn
from bastion.identity.types import ClientInfo
from bastion.kernel.clock import Clock
from bastion.mail.queue import MailQueue
from bastion.observability.metrics import LOCKOUTS, LOGINS, SOURCES_BLOCKED
from bastion.settings import DetectionSettings

log = structlog.get_logger("bastion.detection")

# session.info key: the device a login was admitted from, read with its admission.
ADMITTED_DEVICE: Final = "bastion.detection.admitted_device"
BLOCK_FAILURES = "failures"
BLOCK_STUFFING = "credential_stuffing"
# A known device's last-seen time moves at most this often (see repository.touch_device).
DEVICE_TOUCH_INTERVAL = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _AdmittedDevice:
    user_id: str
    client: ClientInfo
    fingerprint: bytes
    last_seen: datetime | None


class SqlLoginGuard:
    """See the module docstring. Thread-safe: the state is in the counters and the database."""

    def __init__(
        self,
        *,
        settings: DetectionSettings,
        counters: Counters,
        keys: devices.Mac,
        clock: Clock,
        mail: MailQueue,
        events: SecurityEvents,
        base_url: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._counters = counters
        self._keys = keys
        self._clock = clock
        self._mail = mail
        self._events = events
        self._base_url = base_url.rstrip("/")
        self._sleep = sleep
        self._account = window(settings.account_failure_limit, settings.account_window_seconds)
        # One less than the limit: the hit that does not fit is the limit-th event, which blocks.
        self._source = window(settings.source_failure_limit - 1, settings.source_window_seconds)
        self._stuffing = window(
            settings.stuffing_account_limit - 1, settings.stuffing_window_seconds
        )
        # One slot per (source, account): a hit that fits is that account's first failure there.
        self._pair = window(1, settings.stuffing_window_seconds)

    # -- LoginGuard -------------------------------------------------------------------------

    def admit(self, session: Session, attempt: LoginAttempt) -> Admission:
        """429 (SourceBlocked) for a blocked source; LOCKED for a locked account or a full
        window; otherwise takes a slot in the account's window. CountersUnavailable (503) if
        the counters cannot be reached: fail closed."""
        if not self._settings.enabled:
            return Admission.OPEN
        now = self._clock.now()
        source = devices.source_of(attempt.client.ip) if attempt.client.ip else None
        fingerprint = self._fingerprint(attempt.user_id or "", attempt.client)
        # One read for all, and the same one for an unknown account (its user id is None).
        standing = repository.standing(
            session,
            source=source,
            user_id=attempt.user_id,
            fingerprint=fingerprint,
            now=now,
            password_changed_at=attempt.password_changed_at,
        )
        if attempt.user_id is not None:
            # For signed_in, later in this transaction: no second read of the device.
            session.info[ADMITTED_DEVICE] = _AdmittedDevice(
                attempt.user_id, attempt.client, fingerprint, standing.device_last_seen
            )
        if standing.blocked_until is not None:
            LOGINS.labels("blocked").inc()
            left = (standing.blocked_until - now).total_seconds()
            raise SourceBlocked(retry_after=max(1, math.ceil(left)))
        if standing.locked:
            LOGINS.labels("locked").inc()
            return Admission.LOCKED
        if not self._counters.hit(self._account, "account", attempt.account_key.hex()):
            # Concurrent attempts filled the window before the lock was written: lock now.
            LOGINS.labels("locked").inc()
            self._lock(session, attempt, failures=self._account.amount)
            return Admission.LOCKED
        return Admission.OPEN

    def failed(self, session: Session, attempt: LoginAttempt) -> None:
        """Count a wrong password (or unknown account): delay, lock, block as the limits say."""
        if not self._settings.enabled:
            return
        LOGINS.labels("failed").inc()
        key = attempt.account_key.hex()
        failures = self._counters.count(self._account, "account", key)
        self._delay(failures)
        if failures >= self._account.amount:
            self._lock(session, attempt, failures=failures)
        if attempt.client.ip:
            self._watch_source(session, attempt, key)

    def succeeded(self, session: Session, attempt: LoginAttempt) -> None:  # noqa: ARG002 - protocol
        """The password was right: the account's failures are forgiven."""
        if self._settings.enabled:
            self._counters.clear(self._account, "account", attempt.account_key.hex())

    def signed_in(self, session: Session, signed_in: SignedIn) -> None:
        """A complete login: remember the device; mail the owner if it is a new one.

        The notice is sealed before this method's first write (SQLite: see ``mail.queue``)."""
        LOGINS.labels("ok").inc()
        if not self._settings.enabled:
            return
        client = signed_in.client
        now = self._clock.now()
        admitted = session.info.pop(ADMITTED_DEVICE, None)
        if (
            isinstance(admitted, _AdmittedDevice)
            and admitted.user_id == signed_in.user_id
            and admitted.client == client
        ):
            # A password or passkey login read the device with its admission (same transaction).
            fingerprint, last_seen = admitted.fingerprint, admitted.last_seen
        else:
            # After a second factor (another transaction): one primary-key read.
            fingerprint = self._fingerprint(signed_in.user_id, client)
            last_seen = repository.device_last_seen(session, signed_in.user_id, fingerprint)
        # The usual case first: a device seen before.
        if last_seen is not None:
            repository.touch_device(
                session,
                signed_in.user_id,
                fingerprint,
                last_seen_at=last_seen,
                now=now,
                every=DEVICE_TOUCH_INTERVAL,
            )
            return
        if not repository.has_devices(session, signed_in.user_id):
            # The very first sign-in has nothing to compare with: remember it silently.
            repository.remember_device(session, signed_in.user_id, fingerprint, now=now)
            return
        family = devices.user_agent_family(client.user_agent)
        token = links.new_link_token()
        prepared = None
        if self._settings.new_device_email:
            prepared = self._mail.prepare(
                messages.new_device(
                    to=signed_in.email,
                    name=signed_in.name,
                    base_url=self._base_url,
                    token=token,
                    family=family,
                    network=devices.network_of(client.ip),
                ),
                now=now,
            )
        if not repository.remember_device(session, signed_in.user_id, fingerprint, now=now):
            return  # a concurrent sign-in from the same new device already told the owner
        self._events.record(
            session,
            SecurityEvent(
                type="login.new_device",
                severity=Severity.MEDIUM,
                subject=signed_in.user_id,
                source=client.ip,
                details={"family": family, "mfa": signed_in.mfa},
            ),
        )
        if prepared is not None:
            links.store(
                session,
                token=token,
                user_id=signed_in.user_id,
                purpose=LinkPurpose.REPORT,
                now=now,
                lifetime=timedelta(seconds=self._settings.report_link_seconds),
            )
            self._mail.enqueue(session, prepared, now=now)

    # -- internals ----------------------------------------------------------------------------

    def _fingerprint(self, user_id: str, client: ClientInfo) -> bytes:
        return devices.fingerprint(
            self._keys, user_id=user_id, user_agent=client.user_agent, ip=client.ip
        )

    def _delay(self, failures: int) -> None:
        """Slow a serial guesser down: base * 2^(failures - 2) from the second failure, capped.
        It runs in the threadpool thread of the login, never on the event loop."""
        if failures < 2 or self._settings.delay_base_ms == 0:
            return
        exponent = min(failures - 2, 16)
        delay_ms = min(self._settings.delay_base_ms * 2**exponent, self._settings.delay_max_ms)
        self._sleep(delay_ms / 1000)

    def _lock(self, session: Session, attempt: LoginAttempt, *, failures: int) -> None:
        if attempt.user_id is None:
            return  # an unknown account is held off by its full window alone
        now = self._clock.now()
        seconds = self._settings.lockout_seconds
        token = links.new_link_token()
        # Sealed before the first write of the transaction (SQLite: see mail.queue).
        prepared = (
            self._mail.prepare(
                messages.locked(
                    to=attempt.email,
                    name=attempt.name,
                    base_url=self._base_url,
                    token=token,
                    failures=failures,
                    minutes=max(1, math.ceil(seconds / 60)),
                ),
                now=now,
            )
            if attempt.email is not None
            else None
        )
        placed = repository.lock(
            session,
            attempt.user_id,
            reason=repository.REASON_FAILURES,
            failures=failures,
            now=now,
            until=now + timedelta(seconds=seconds),
        )
        if not placed:
            return
        # The lock holds the account off from now on, so its window can start afresh (or the
        # first attempt after the lock would lock again). Only once the lock is committed: a
        # clear before that would let other processes, which cannot see the lock yet, verify
        # up to N more passwords.
        key = attempt.account_key.hex()
        event.listen(session, "after_commit", lambda _s: self._forget(key), once=True)
        LOCKOUTS.inc()
        self._events.record(
            session,
            SecurityEvent(
                type="login.locked",
                severity=Severity.MEDIUM,
                subject=attempt.user_id,
                source=attempt.client.ip,
                details={"failures": failures, "lockout_seconds": seconds},
            ),
        )
        if prepared is not None:
            links.store(
                session,
                token=token,
                user_id=attempt.user_id,
                purpose=LinkPurpose.UNLOCK,
                now=now,
                lifetime=timedelta(seconds=self._settings.unlock_link_seconds),
            )
            self._mail.enqueue(session, prepared, now=now)

    def _forget(self, key: str) -> None:
        try:
            self._counters.clear(self._account, "account", key)
        except CountersUnavailable:
            # After the commit nobody can be told; the window then just runs its course.
            log.warning("detection.window_not_cleared")

    def _watch_source(self, session: Session, attempt: LoginAttempt, key: str) -> None:
        source = devices.source_of(attempt.client.ip or "")
        if not self._counters.hit(self._source, "source", source):
            self._block(session, source, reason=BLOCK_FAILURES)
            return
        first_failure_of_account = self._counters.hit(self._pair, "pair", source, key)
        if first_failure_of_account and not self._counters.hit(self._stuffing, "spread", source):
            self._block(session, source, reason=BLOCK_STUFFING)

    def _block(self, session: Session, source: str, *, reason: str) -> None:
        now = self._clock.now()
        seconds = self._settings.block_seconds
        until = now + timedelta(seconds=seconds)
        if not repository.block(session, source, reason=reason, now=now, until=until):
            return
        SOURCES_BLOCKED.inc()
        self._events.record(
            session,
            SecurityEvent(
                type="source.blocked",
                severity=Severity.HIGH,
                subject=source,
                source=source,
                details={"reason": reason, "block_seconds": seconds},
            ),
        )
