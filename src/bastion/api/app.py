"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from bastion import __version__
from bastion.api.access import authenticated, public
from bastion.api.errors import install_error_handlers
from bastion.api.middleware import EdgeMiddleware
from bastion.api.ratelimit import RateLimitMiddleware, storage_down_alert
from bastion.api.routers import (
    access_review,
    api_keys,
    audit,
    auth,
    bootstrap,
    break_glass,
    detection,
    health,
    invitations,
    keys,
    me,
    operator_users,
    records,
    roles,
    security_events,
    tenant_settings,
    tenants,
)
from bastion.bootstrap import Container

OPENAPI_URL = "/api/openapi.json"


def create_app(container: Container) -> FastAPI:
    """An app over ``container``. No settings, engines or clients are built at import time."""
    app = FastAPI(
        title="Bastion",
        version=__version__,
        openapi_url=OPENAPI_URL,
        # Interactive docs pull scripts from a CDN, which the API's CSP forbids; the OpenAPI
        # document is served, and any viewer can load it.
        docs_url=None,
        redoc_url=None,
        # FastAPI's native OpenTelemetry hooks ask the global providers, which look in the
        # process environment, on every request: 12 % of a record read's CPU under load.
        # Bastion exports Prometheus metrics of its own and configures no OpenTelemetry.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    install_error_handlers(app)
    # Every route declares its access rule (bastion.api.access). Routers that predate those
    # declarations get theirs here, once for the whole router; newer routers declare per route.
    # Records first: a request is matched against the routes in order, and the record routes
    # are the hot path (bench/bench_records.py); no other router serves .../collections.
    app.include_router(records.router)
    app.include_router(health.router, dependencies=[public()])
    app.include_router(bootstrap.router, dependencies=[public()])
    app.include_router(auth.router, dependencies=[public()])
    app.include_router(detection.router)
    app.include_router(me.router, dependencies=[authenticated(allow_mfa_enrolment=True)])
    app.include_router(tenants.router)
    app.include_router(audit.router)
    app.include_router(invitations.router)
    app.include_router(api_keys.router)
    app.include_router(security_events.router)
    app.include_router(tenant_settings.router)
    app.include_router(roles.router)
    app.include_router(break_glass.operator_router)
    app.include_router(break_glass.tenant_router)
    app.include_router(access_review.router)
    app.include_router(operator_users.router)
    app.include_router(keys.router)
    if container.settings.rate_limits.enabled:
        # Added before the edge, so the edge wraps it (client address, request id, headers).
        app.add_middleware(
            RateLimitMiddleware,
            settings=container.settings.rate_limits,
            on_storage_down=storage_down_alert(container),
        )
    http = container.settings.http
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=http.max_body_bytes,
        trusted_proxies=http.trusted_proxies,
        hsts_max_age=http.hsts_max_age_seconds,
    )
    return app
