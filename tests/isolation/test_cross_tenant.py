"""Property: whatever tenant A's members call, naming tenant B's objects, it fails, shows nothing
of B, and changes nothing of B (P9, ASVS V8.4.1 and V8.2.2).

Hypothesis draws sequences of calls (``operations``) from the live route table, made by A's
owner, admin, member, viewer and auditor in any order. After each sequence, everything B owns is
read again from the database and compared with the snapshot taken before any attack. A
deterministic sweep also calls every operation once, so no route depends on the draw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.isolation.operations import Kind, Operation, candidates, operations, tenant_refs
from tests.isolation.world import ROLES

# Bounded so both backends together stay well under a minute on the shared machine.
MAX_EXAMPLES = 20
MAX_CALLS = 6

Choose = Callable[[Sequence[str]], str]


def _path(world, operation: Operation, choose: Choose) -> str:
    path = operation.path
    for parameter in operation.parameters:
        if parameter == "tenant":
            own = operation.kind is Kind.A_TENANT_B_OBJECT
            value = choose(tenant_refs(world.a if own else world.b))
        else:
            value = choose(candidates(world.b, parameter))
        path = path.replace("{" + parameter + "}", value, 1)
    return path


def _leaks(world, body: str, path: str) -> list[str]:
    """B's markers and ids in ``body`` that the request itself did not contain."""
    secrets = [*world.b.markers, world.b.id, world.b.slug, *world.b.objects["user"]]
    return [marker for marker in secrets if marker in body and marker not in path]


def _attack(world, operation: Operation, role: str, path: str) -> None:
    caller = world.a.members[role]
    response = world.client.request(
        operation.method, path, json=operation.body(), headers=caller.headers
    )
    world.client.cookies.clear()
    status, text = response.status_code, response.text
    where = f"{role}: {operation.method} {path} -> {status} {text[:300]}"
    assert status < 500, where
    if operation.kind is Kind.B_TENANT:
        # No existence oracle: B's tenant answers exactly as a tenant that does not exist.
        assert status == 404, where
        assert json.loads(text)["code"] == "access.tenant_not_found", where
    elif operation.kind is not Kind.OWN_READ:
        assert 400 <= status < 500, where
    assert not _leaks(world, text, path), where


def test_the_route_table_gives_every_kind_of_attack(world):
    kinds = {operation.kind for operation in operations(world.app)}
    assert kinds == set(Kind)


def test_requests_run_as_a_role_that_row_level_security_binds(world):
    if world.backend == "sqlite":
        assert world.container.request_engine is world.container.engine
        return
    tenants = sa.text("SELECT count(DISTINCT tenant_id) FROM memberships")
    with world.container.request_engine.connect() as connection:
        assert connection.scalar(tenants) == 0  # no tenant bound: nothing
    with world.container.engine.connect() as connection:
        assert connection.scalar(tenants) == 2  # the owner sees both tenants


def test_every_route_refuses_tenant_b_once(world):
    """Each operation once, A's roles taking turns, with each parameter's first candidate."""
    for index, operation in enumerate(operations(world.app)):
        path = _path(world, operation, lambda options, i=index: options[i % len(options)])
        _attack(world, operation, ROLES[index % len(ROLES)], path)
    assert world.snapshot_of_b() == world.b_before


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_tenant_a_never_reaches_tenant_b(world, data):
    table = operations(world.app)
    calls = data.draw(st.integers(min_value=1, max_value=MAX_CALLS), label="calls")
    for _ in range(calls):
        operation = data.draw(st.sampled_from(table), label="operation")
        role = data.draw(st.sampled_from(ROLES), label="caller")
        path = _path(world, operation, lambda options: data.draw(st.sampled_from(options)))
        _attack(world, operation, role, path)
    assert world.snapshot_of_b() == world.b_before
