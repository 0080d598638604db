"""``TenantCall``: the record hot path's one-step request (authorize, work, commit, audit).

It replaces the request transaction (``get_session``) and ``requires()`` for the routes that
use it, so it must keep what they keep and drop what they drop: nothing runs before the caller
is authorized, a failed route writes nothing, an audited refusal and a break-glass trace are
committed, and a read's audit event is recorded only after the commit and before the answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.requests import Request

from bastion.access import Permission
from bastion.access.break_glass import keep_on_error
from bastion.api import tenant_call as tenant_call_module
from bastion.api.tenant_call import TenantCall
from bastion.audit.errors import AuditWriteFailed
from bastion.db import UnitOfWork
from bastion.errors import AppError


class _Refused(AppError):
    audited_refusal = True


class _Failed(AppError):
    pass


class _Batcher:
    def __init__(self, container: Any, *, fail: bool = False) -> None:
        self.container = container
        self.fail = fail
        self.recorded: list[tuple[object, int]] = []

    def record(self, event: object) -> None:
        # The count seen from another connection: what was committed before the event.
        self.recorded.append((event, _count(self.container)))
        if self.fail:
            raise AuditWriteFailed("the read audit batch did not commit")


@pytest.fixture
def container(tmp_path: Path) -> Any:
    engine = create_engine(f"sqlite:///{tmp_path / 't.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE writes (x INTEGER)"))
    container = SimpleNamespace(request_uow=UnitOfWork(engine, tenant_context=False), engine=engine)
    container.read_audit = _Batcher(container)
    return container


@pytest.fixture
def authorized(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Authorization replaced by a recorder that writes (as an audited check may) and admits."""
    calls: list[str] = []

    def authorize(request: Any, container: Any, session: Any, **kwargs: Any) -> str:
        calls.append(kwargs["tenant"])
        session.execute(text("INSERT INTO writes VALUES (0)"))
        return "context"

    monkeypatch.setattr(tenant_call_module, "authorize_tenant_request", authorize)
    return calls


def _count(container: Any) -> int:
    with container.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM writes")).scalar_one())


def _call(container: Any) -> TenantCall:
    request = Request({"type": "http", "method": "GET", "headers": [], "path": "/", "state": {}})
    return TenantCall(request, container, "acme", Permission.RECORD_READ)


def _write(session: Any, context: Any, client: Any) -> str:
    assert context == "context"
    session.execute(text("INSERT INTO writes VALUES (1)"))
    return "done"


def test_the_work_runs_after_authorization_and_commits(container, authorized):
    assert asyncio.run(_call(container).run(_write)) == "done"
    assert authorized == ["acme"]
    assert _count(container) == 2


def test_a_refused_caller_never_reaches_the_work(container, monkeypatch):
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise _Failed

    monkeypatch.setattr(tenant_call_module, "authorize_tenant_request", refuse)
    reached: list[bool] = []
    with pytest.raises(_Failed):
        asyncio.run(_call(container).run(lambda *_: reached.append(True)))
    assert not reached


@pytest.mark.parametrize("error", [_Failed(), ValueError("boom")])
def test_work_that_raises_writes_nothing(container, authorized, error):
    def fail(session: Any, context: Any, client: Any) -> None:
        _write(session, context, client)
        raise error

    with pytest.raises(type(error)):
        asyncio.run(_call(container).run(fail))
    assert _count(container) == 0


def test_an_audited_refusal_is_kept_and_still_raised(container, authorized):
    def refuse(session: Any, context: Any, client: Any) -> None:
        raise _Refused

    with pytest.raises(_Refused):
        asyncio.run(_call(container).run(refuse))
    assert _count(container) == 1  # what authorization wrote


def test_a_break_glass_trace_is_kept_when_the_work_fails(container, authorized):
    def probe(session: Any, context: Any, client: Any) -> None:
        keep_on_error(session)
        raise _Failed

    with pytest.raises(_Failed):
        asyncio.run(_call(container).run(probe))
    assert _count(container) == 1


def test_a_read_is_audited_after_its_commit_and_before_the_answer(container, authorized):
    def read(session: Any, context: Any, client: Any) -> tuple[str, str]:
        return _write(session, context, client), "event"

    assert asyncio.run(_call(container).run_read(read)) == "done"
    assert container.read_audit.recorded == [("event", 2)]


def test_a_read_whose_audit_fails_is_not_answered(container, authorized):
    container.read_audit.fail = True
    with pytest.raises(AuditWriteFailed):
        asyncio.run(_call(container).run_read(lambda *_: ("data", "event")))


def test_a_read_without_an_audit_event_records_nothing(container, authorized):
    assert asyncio.run(_call(container).run_read(lambda *_: ("data", None))) == "data"
    assert container.read_audit.recorded == []
