"""argon2 must never run on the event loop: routes reaching it stay plain (threadpool) defs."""

import inspect

from fastapi.routing import APIRoute

from bastion.api.routers import auth, bootstrap, me


def test_identity_routes_are_synchronous_so_starlette_runs_them_in_its_threadpool():
    routes = [r for m in (auth, me, bootstrap) for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 12
    for route in routes:
        assert not inspect.iscoroutinefunction(route.endpoint), route.path


def test_the_request_transaction_commits_before_the_response_is_sent():
    from typing import get_args

    from bastion.api.deps import SessionDep

    (depends,) = [a for a in get_args(SessionDep) if hasattr(a, "dependency")]
    assert depends.scope == "function"
