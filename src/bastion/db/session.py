"""Unit of work: the edge (a request, a CLI command) owns the transaction; services never commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

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
