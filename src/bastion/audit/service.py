"""The audit log's write side: one call, inside the caller's transaction.

``AuditLog.append(session, event)`` validates the event, pseudonymises the actor, chains the entry
to its chain's head and writes it with the caller's session. The caller commits: if the business
change rolls back, the event goes with it; if the append fails, it raises and the caller's unit of
work rolls the business change back (DESIGN invariant 2).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Final, Protocol, TypedDict
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from bastion.audit import repository
from bastion.audit.canonical import chain_hash, entry_text, format_time
from bastion.audit.errors import AuditWriteFailed, InvalidAuditEvent
from bastion.audit.events import (
    AuditEvent,
    EntryRef,
    Outcome,
    canonical_details,
    chain_for,
    checked_action,
    checked_request_id,
    checked_source_ip,
    checked_target,
    clipped_user_agent,
)
from bastion.kernel.clock import Clock
from bastion.settings import AuditSettings

ACTOR_MAC_PURPOSE: Final = "audit.actor"
PSEUDONYM_BYTES: Final = 16  # 128 bits: collision-free at any realistic user count
PSEUDONYM_PREFIX: Final = "act_"
MAX_USER_ID_CHARS: Final = 64
PSEUDONYM_CACHE_SIZE: Final = 10_000
_ACTORS_SEEN: Final = "bastion.audit.actors_seen"
_ACTORS_COMMITTING: Final = "bastion.audit.actors_committing"
_LISTENING: Final = "bastion.audit.listening"


class Pseudonymizer(Protocol):
    """The keyring's system MAC (HMAC-SHA256 under a system key, separated by ``purpose``)."""

    def system_mac(self, purpose: str, message: bytes) -> bytes: ...


class AuditLog:
    """Appends hash-chained events; maps actors to pseudonyms and forgets them on erasure.

    Thread-safe: one instance serves every request. Appends to one chain are serialised by the
    chain-head row lock (PostgreSQL) or the database write lock (SQLite); different chains never
    wait for each other on PostgreSQL.
    """

    def __init__(
        self, *, pseudonymizer: Pseudonymizer, clock: Clock, settings: AuditSettings
    ) -> None:
        self._pseudonymizer = pseudonymizer
        self._clock = clock
        self._max_details_bytes = settings.max_details_bytes
        # Last head this process wrote per chain. Only a hint: the database's append guard checks
        # it under the write lock, so a stale or rolled-back value costs one extra statement.
        self._known_heads: dict[str, tuple[int, str]] = {}
        # user id -> pseudonym: a pure function of the system key, so caching it is safe.
        self._pseudonyms: dict[str, str] = {}
        # Pseudonyms whose mapping row this process saw committed: no need to upsert it again.
        # Another process's erasure leaves the entry stale, which only means an erased user's
        # mapping is not recreated.
        self._committed_actors: set[str] = set()

    def pseudonym_for(self, user_id: str) -> str:
        """The stable pseudonym of ``user_id``: a keyed HMAC, so guessing ids cannot reverse it."""
        known = self._pseudonyms.get(user_id)
        if known is not None:
            return known
        if not user_id or len(user_id) > MAX_USER_ID_CHARS:
            raise InvalidAuditEvent("actor user id must be 1-64 characters")
        _refuse_nul(user_id)
        mac = self._pseudonymizer.system_mac(ACTOR_MAC_PURPOSE, user_id.encode("utf-8"))
        pseudonym = PSEUDONYM_PREFIX + mac[:PSEUDONYM_BYTES].hex()
        if len(self._pseudonyms) >= PSEUDONYM_CACHE_SIZE:
            self._pseudonyms.clear()  # crude bound; a miss costs one HMAC
        self._pseudonyms[user_id] = pseudonym
        return pseudonym

    def append(self, session: Session, event: AuditEvent) -> EntryRef:
        """Record ``event`` in the caller's transaction and return where it landed.

        Raises InvalidAuditEvent (or its SecretInAuditDetails / AuditDetailsTooLarge) before
        touching the database, and AuditWriteFailed if the database refuses the write; in both
        cases the caller's transaction must not commit the action.
        """
        prepared = self._prepare(event)
        try:
            connection = session.connection()
            seq, new_hash = self._write(connection, prepared.chain, prepared.entry_at)
            self._remember(session, connection, prepared)
        except SQLAlchemyError as exc:
            raise AuditWriteFailed from exc
        self._known_heads[prepared.chain] = (seq, new_hash)
        return EntryRef(chain=prepared.chain, seq=seq, hash=new_hash)

    def append_batch(
        self, session: Session, events: Sequence[AuditEvent]
    ) -> list[EntryRef | InvalidAuditEvent]:
        """Record several events in the caller's transaction (the read-audit group commit).

        Each chain's events are written in the given order with one head lock and one multi-row
        INSERT, instead of a statement each. An event that fails validation comes back as its
        InvalidAuditEvent and takes no place in its chain; the others are unaffected. Raises
        AuditWriteFailed if the database refuses the write: the caller must then not commit.
        """
        outcomes: dict[int, EntryRef | InvalidAuditEvent] = {}
        runs: dict[str, list[tuple[int, _Prepared]]] = {}
        for index, audit_event in enumerate(events):
            try:
                prepared = self._prepare(audit_event)
            except InvalidAuditEvent as exc:
                outcomes[index] = exc
                continue
            runs.setdefault(prepared.chain, []).append((index, prepared))
        heads: dict[str, tuple[int, str]] = {}
        try:
            connection = session.connection()
            # Heads locked in chain order, as every batch does: two processes' batches cannot
            # deadlock on PostgreSQL.
            for chain in sorted(runs):
                seq, prev_hash = repository.lock_head(connection, chain)
                rows = []
                for index, prepared in runs[chain]:
                    row = _row(chain, seq + 1, prev_hash, prepared.entry_at)
                    seq, prev_hash = row["seq"], row["hash"]
                    rows.append(row)
                    outcomes[index] = EntryRef(chain=chain, seq=seq, hash=prev_hash)
                repository.insert_events(connection, rows)
                for _, prepared in runs[chain]:
                    self._remember(session, connection, prepared)
                heads[chain] = (seq, prev_hash)
        except SQLAlchemyError as exc:
            raise AuditWriteFailed from exc
        self._known_heads.update(heads)
        return [outcomes[index] for index in range(len(events))]

    def _prepare(self, event: AuditEvent) -> _Prepared:
        """Validate ``event`` and build everything of its entry but the position, which only
        the chain head decides. Raises InvalidAuditEvent; touches no database."""
        chain = chain_for(event.tenant_id)
        action = checked_action(event.action)
        try:
            outcome = Outcome(event.outcome).value
        except ValueError:
            raise InvalidAuditEvent("outcome is not one of success/failure/denied/error") from None
        details_json = canonical_details(event.details, max_bytes=self._max_details_bytes)
        actor = None if event.actor_user_id is None else self.pseudonym_for(event.actor_user_id)
        now = self._clock.now()
        entry_at = partial(
            entry_text,
            chain=chain,
            time=format_time(now),
            tenant=event.tenant_id,
            actor=actor,
            action=action,
            target=checked_target(event.target),
            outcome=outcome,
            source_ip=checked_source_ip(event.source_ip),
            user_agent=clipped_user_agent(event.user_agent),
            request_id=checked_request_id(event.request_id),
            details_json=details_json,
        )
        return _Prepared(chain, actor, event.actor_user_id, now, entry_at)

    def _remember(self, session: Session, connection: Connection, prepared: _Prepared) -> None:
        if prepared.actor is not None and prepared.actor_user_id is not None:
            self._remember_actor(
                session, connection, prepared.actor, prepared.actor_user_id, prepared.now
            )

    def _write(
        self, connection: Connection, chain: str, entry_at: Callable[..., str]
    ) -> tuple[int, str]:
        """Insert the entry at the chain's head; returns (seq, hash)."""
        known = self._known_heads.get(chain)
        # SQLite: try the head this process last wrote. The INSERT takes the write lock, and the
        # database refuses it (undoing just that statement) unless it extends the real head.
        if known is not None and connection.dialect.name == "sqlite":
            row = _row(chain, known[0] + 1, known[1], entry_at)
            if repository.insert_event(connection, row):
                return row["seq"], row["hash"]
        # Lock and read the head (PostgreSQL always: a refused INSERT would abort the caller's
        # transaction there), then extend it.
        last_seq, prev_hash = repository.lock_head(connection, chain)
        row = _row(chain, last_seq + 1, prev_hash, entry_at)
        if not repository.insert_event(connection, row):  # pragma: no cover - we hold the lock
            raise AuditWriteFailed("the chain head moved while locked")
        return row["seq"], row["hash"]

    def _remember_actor(
        self, session: Session, connection: Connection, actor: str, user_id: str, now: datetime
    ) -> None:
        # Skipped once this process has seen the mapping committed, or written it earlier in the
        # same (innermost) transaction. Keyed on the savepoint too, so a rolled-back savepoint
        # cannot leave us believing in a mapping that it took with it.
        if actor in self._committed_actors:
            return
        transaction = session.get_nested_transaction() or session.get_transaction()
        seen: WeakKeyDictionary[SessionTransaction, set[str]] = session.info.setdefault(
            _ACTORS_SEEN, WeakKeyDictionary()
        )
        written = seen.setdefault(transaction, set()) if transaction is not None else set()
        if actor in written:
            return
        repository.remember_actor(connection, actor, user_id, now)
        written.add(actor)
        if not session.info.get(_LISTENING):
            event.listen(session, "before_commit", self._before_commit)
            event.listen(session, "after_commit", self._after_commit)
            session.info[_LISTENING] = True

    def _before_commit(self, session: Session) -> None:
        # Only the outermost transaction's own writes count as committed; mappings written in
        # savepoints are simply written again later (ON CONFLICT DO NOTHING), never assumed.
        transaction = session.get_transaction()
        seen = session.info.get(_ACTORS_SEEN)
        written = seen.get(transaction) if seen is not None and transaction is not None else None
        session.info[_ACTORS_COMMITTING] = set(written or ())

    def _after_commit(self, session: Session) -> None:
        committing: set[str] = session.info.pop(_ACTORS_COMMITTING, set())
        if len(self._committed_actors) + len(committing) > PSEUDONYM_CACHE_SIZE:
            self._committed_actors.clear()  # crude bound; a miss costs one upsert
        self._committed_actors.update(committing)

    def forget_actor(self, session: Session, user_id: str) -> bool:
        """Erasure: delete the pseudonym → user mapping; the chain keeps only the pseudonym.

        Returns whether a mapping existed. Caller's transaction, caller commits.
        """
        self._committed_actors.discard(self.pseudonym_for(user_id))
        return repository.forget_actor(session.connection(), user_id)

    def resolve_actor(self, session: Session, pseudonym: str) -> str | None:
        """The user behind ``pseudonym``, or None once erased (or never seen)."""
        return repository.actor_user_id(session.connection(), pseudonym)

    def is_actor(self, pseudonym: str, user_id: str) -> bool:
        """Constant-time check that ``pseudonym`` is ``user_id``'s (for data-subject export)."""
        return hmac.compare_digest(self.pseudonym_for(user_id), pseudonym)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A validated event: its chain, actor pseudonym and time, and its entry text given a
    sequence number."""

    chain: str
    actor: str | None
    actor_user_id: str | None
    now: datetime
    entry_at: Callable[..., str]


class _EventRow(TypedDict):
    chain_id: str
    seq: int
    entry: str
    prev_hash: str
    hash: str


def _row(chain: str, seq: int, prev_hash: str, entry_at: Callable[..., str]) -> _EventRow:
    # The stored entry is the hashed text itself: verification reads it back and hashes it.
    text = entry_at(seq=seq)
    return {
        "chain_id": chain,
        "seq": seq,
        "entry": text,
        "prev_hash": prev_hash,
        "hash": chain_hash(prev_hash, text.encode("utf-8")),
    }


def _refuse_nul(user_id: str) -> None:
    try:
        user_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAuditEvent("actor user id is not valid Unicode") from None
    if "\x00" in user_id:
        raise InvalidAuditEvent("actor user id contains a NUL character")
