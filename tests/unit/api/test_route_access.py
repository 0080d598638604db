"""Every route declares its access rule in one place; this walks the real route table."""

import pytest
from fastapi import FastAPI

from bastion.api.access import AccessKind, operator, public, route_access
from bastion.api.app import create_app
from bastion.bootstrap import build
from bastion.settings import Settings

PUBLIC_PREFIXES = ("/healthz", "/readyz", "/bootstrap", "/api/v1/bootstrap", "/api/v1/auth/")


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("routes") / "data"
    container = build(Settings(_env_file=None, env="test", data_dir=data_dir))
    try:
        yield route_access(create_app(container))
    finally:
        container.engine.dispose()


def _name(route):
    return f"{sorted(route.methods)} {route.path}"


def test_every_route_declares_exactly_one_access_rule(routes):
    assert len(routes) > 20
    undeclared = [_name(r) for r in routes if not r.rules]
    assert not undeclared, f"routes that declare no access rule: {undeclared}"
    ambiguous = {_name(r): r.rules for r in routes if len(r.rules) > 1}
    assert not ambiguous, f"routes with more than one access rule: {ambiguous}"


def test_health_bootstrap_and_auth_are_public_and_nothing_else_is(routes):
    for route in routes:
        (rule,) = route.rules
        is_public = route.path.startswith(PUBLIC_PREFIXES)
        assert (rule.kind is AccessKind.PUBLIC) == is_public, (_name(route), rule)


def test_me_and_tenant_listing_are_authenticated_without_a_tenant_permission(routes):
    authenticated = [
        r for r in routes if r.path.startswith("/api/v1/me") or r.path == "/api/v1/tenants"
    ]
    assert len(authenticated) >= 10
    for route in authenticated:
        assert route.rules[0].kind is AccessKind.AUTHENTICATED, _name(route)


def test_every_route_under_a_tenant_requires_a_permission(routes):
    tenant_routes = [r for r in routes if "{tenant}" in r.path]
    assert len(tenant_routes) >= 6
    for route in tenant_routes:
        (rule,) = route.rules
        assert rule.kind is AccessKind.PERMISSION, _name(route)
        assert rule.permission is not None


def test_a_permission_is_only_declared_where_a_tenant_is_in_the_path(routes):
    # requires() reads {tenant} from the path; elsewhere it would silently become a query string.
    for route in routes:
        if route.rules[0].kind is AccessKind.PERMISSION:
            assert "{tenant}" in route.path, _name(route)


def test_operator_routes_live_under_the_operator_prefix_and_nowhere_else(routes):
    for route in routes:
        is_operator_route = route.rules[0].kind is AccessKind.OPERATOR
        assert is_operator_route == route.path.startswith("/api/v1/operator/"), _name(route)


def test_the_walker_catches_a_route_that_declares_nothing():
    app = FastAPI()

    @app.get("/declared", dependencies=[public()])
    def declared() -> dict[str, str]:
        return {}

    @app.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    @app.get("/staff", dependencies=[operator()])
    def staff() -> dict[str, str]:
        return {}

    found = {r.path: r.rules for r in route_access(app)}
    assert [rule.kind for rule in found["/declared"]] == [AccessKind.PUBLIC]
    assert [rule.kind for rule in found["/staff"]] == [AccessKind.OPERATOR]
    assert found["/forgotten"] == ()
