"""Building a real identity service over a real database for integration tests."""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bastion.crypto import Keyring, LocalKeyProvider, create_key_file
from bastion.db import UnitOfWork
from bastion.identity import ClientInfo, FirstOperatorBootstrap, SqlIdentity
from bastion.identity.events import RecordingAuditTrail
from bastion.identity.passwords import Argon2Parameters, PasswordHasher
from bastion.kernel.clock import FrozenClock, SystemClock
from bastion.mail import DirectoryOutbox
from bastion.settings import IdentitySettings
from tests.support.mail import DeliverOnCommit

CHEAP_ARGON2 = {"argon2_memory_kib": 64, "argon2_time_cost": 1, "argon2_parallelism": 1}
# e2e servers: the same cheap parameters through the environment.
CHEAP_ARGON2_ENV = {
    "BASTION_IDENTITY__ARGON2_MEMORY_KIB": "64",
    "BASTION_IDENTITY__ARGON2_TIME_COST": "1",
}
CLIENT = ClientInfo(ip="203.0.113.7", user_agent="pytest", request_id="req-test-0001")
# How long a test waits for a server to deliver a queued message (normally milliseconds).
MAIL_WAIT_SECONDS = 10.0
TOKEN_LINE = re.compile(r"works once\):\r?\n([A-Za-z0-9_-]{20,})")


@dataclass
class Rig:
    identity: SqlIdentity
    uow: UnitOfWork
    clock: FrozenClock
    audit: RecordingAuditTrail
    mail_dir: Path
    bootstrap: FirstOperatorBootstrap
    keyring: Keyring

    def advance(self, **delta: float) -> None:
        self.clock.set(self.clock.now() + timedelta(**delta))


def make_keyring(engine, key_file: Path) -> Keyring:
    """A real keyring (system data key, MAC root) over ``engine``, with a local master key."""
    create_key_file(key_file)
    keyring = Keyring(
        uow=UnitOfWork(engine), provider=LocalKeyProvider(key_file=key_file), clock=SystemClock()
    )
    keyring.initialise()
    return keyring


def make_rig(
    engine,
    mail_dir: Path,
    *,
    keyring: Keyring | None = None,
    mail_queue=None,
    clock: FrozenClock | None = None,
    credential_revokers=(),
    guard=None,
    **overrides,
) -> Rig:
    settings = IdentitySettings(**{**CHEAP_ARGON2, **overrides})
    clock = clock or FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    keyring = keyring or make_keyring(engine, mail_dir.parent / f"{mail_dir.name}.key")
    audit = RecordingAuditTrail()
    bootstrap = FirstOperatorBootstrap(clock=clock)
    identity = SqlIdentity(
        settings=settings,
        hasher=PasswordHasher(
            Argon2Parameters(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
            )
        ),
        keys=keyring,
        clock=clock,
        outbox=mail_queue
        or DeliverOnCommit(
            DirectoryOutbox(directory=mail_dir, sender="Bastion <bastion@example.com>")
        ),
        audit=audit,
        bootstrap=bootstrap,
        base_url="https://bastion.example.com",
        credential_revokers=credential_revokers,
        guard=guard,
    )
    return Rig(identity, UnitOfWork(engine), clock, audit, mail_dir, bootstrap, keyring)


def read_mails(mail_dir: Path) -> list[email.message.EmailMessage]:
    if not mail_dir.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(mail_dir.glob("*.eml"))
    ]


def last_token(
    mail_dir: Path, *, to: str, subject_contains: str, wait_seconds: float = MAIL_WAIT_SECONDS
) -> str:
    """The token of the newest message to ``to`` whose subject contains the given text.

    Waits up to ``wait_seconds`` for it: a server delivers its outbox just after the request
    commits (mail.delivery), not inside the request.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        for message in reversed(read_mails(mail_dir)):
            recipients = [a.addr_spec.lower() for a in message["To"].addresses]
            if to.lower() in recipients and subject_contains in message["Subject"]:
                found = TOKEN_LINE.search(message.get_content())
                if found:
                    return found.group(1)
        if time.monotonic() >= deadline:
            raise AssertionError(f"no mail to {to} about {subject_contains!r}")
        time.sleep(0.05)
