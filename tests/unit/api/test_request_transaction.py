"""The request transaction (``get_session``) and the per-request credential (``credential_of``).

``get_session`` is an async generator that opens the session inline and commits or rolls back
in a worker thread (one threadpool hop instead of two). These tests try to make it keep what it
must drop, drop what it must keep, or authenticate a request from another request's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from starlette.requests import Request

from bastion.api.deps import credential_of, get_session
from bastion.db import UnitOfWork
from bastion.db.tenancy import TENANT_CONTEXT_INFO
from bastion.errors import AppError
from bastion.identity import Principal
from bastion.identity.types import SessionId, UserId


class _Refused(AppError):
    audited_refusal = True


class _Failed(AppError):
    pass


@pytest.fixture
def container(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE writes (x INTEGER)"))
    return SimpleNamespace(request_uow=UnitOfWork(engine, tenant_context=False), engine=engine)


def _count(container: Any) -> int:
    with container.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM writes")).scalar_one())


async def _request(container: Any, error: BaseException | None) -> None:
    """One request: write a row, then end as the route did (returned, or raised ``error``)."""
    dependency: AsyncIterator[Any] = get_session(container)
    session = await anext(dependency)
    session.execute(text("INSERT INTO writes VALUES (1)"))
    if error is None:
        with pytest.raises(StopAsyncIteration):
            await anext(dependency)
        return
    with pytest.raises(type(error)):
        await dependency.athrow(error)


def test_a_route_that_returns_commits(container: Any) -> None:
    asyncio.run(_request(container, None))
    assert _count(container) == 1


@pytest.mark.parametrize("error", [_Failed(), ValueError("boom"), asyncio.CancelledError()])
def test_a_route_that_raises_writes_nothing(container: Any, error: BaseException) -> None:
    asyncio.run(_request(container, error))
    assert _count(container) == 0


def test_an_audited_refusal_is_kept_and_still_raised(container: Any) -> None:
    asyncio.run(_request(container, _Refused()))
    assert _count(container) == 1


def _http_request(token: str) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    return Request({"type": "http", "method": "GET", "headers": headers, "path": "/"})


def test_the_credential_is_checked_once_per_request_and_again_on_the_next() -> None:
    calls: list[str] = []

    def authenticate(session: Any, *, token: str, via_cookie: bool) -> Principal:
        calls.append(token)
        return Principal(user_id=UserId("u1"), session_id=SessionId("s1"), is_operator=False)

    container: Any = SimpleNamespace(
        api_keys=SimpleNamespace(is_api_key=lambda _token: False),
        identity=SimpleNamespace(authenticate=authenticate),
    )
    session = Session(info={TENANT_CONTEXT_INFO: False})  # SQLite-like: nothing to bind
    first = _http_request("token-a")
    assert credential_of(first, container, session) is credential_of(first, container, session)
    assert calls == ["token-a"]
    # A new request is never answered from the last one's result (revocation stays instant).
    credential_of(_http_request("token-a"), container, session)
    assert calls == ["token-a", "token-a"]
