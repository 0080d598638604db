"""Unit of work: the edge (a request, a CLI command) owns the transaction; services never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from bastion.db.tenancy import TENANT_CONTEXT_INFO


class UnitOfWork:
    """Hands out sessions that commit once on success and roll back on any exception.

    ``tenant_context=False``: the role behind ``engine`` is not bound by row-level security
    (the owner), so ``bastion.db.tenancy``'s ``bind_*`` calls skip their round trip.
    """

    def __init__(self, engine: Engine, *, tenant_context: bool = True) -> None:
        self._sessions = sessionmaker(
            engine, expire_on_commit=False, info={TENANT_CONTEXT_INFO: tenant_context}
        )

    @contextmanager
    def begin(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session


DEFERRED_WRITES_INFO: Final = "bastion.deferred_writes"


def defer_until_commit(session: Session, statement: Executable) -> None:
    """Execute ``statement`` in this transaction, but only just before it commits.

    For bookkeeping writes that authentication makes at the start of a request (a session's
    last-seen time, an API key's last use). On SQLite the first write of a transaction takes the
    database's only write lock until commit; a request that later needs a short transaction of
    its own (the keyring reserving encryptions for a data key) would then wait on itself until
    the busy timeout and fail. Deferred, the bookkeeping takes the lock last. A rollback drops it.
    """
    session.info.setdefault(DEFERRED_WRITES_INFO, []).append(statement)


@event.listens_for(Session, "before_commit")
def _run_deferred_writes(session: Session) -> None:
    for statement in session.info.pop(DEFERRED_WRITES_INFO, ()):
        session.execute(statement)


@event.listens_for(Session, "after_rollback")
def _drop_deferred_writes(session: Session) -> None:
    session.info.pop(DEFERRED_WRITES_INFO, None)
