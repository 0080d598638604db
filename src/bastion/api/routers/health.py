"""Liveness and readiness probes, for load balancers and orchestrators."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from bastion.api.deps import ContainerDep
from bastion.api.problems import problem_response
from bastion.api.schemas import Health
from bastion.bootstrap import readiness_problems

router = APIRouter(tags=["health"])
log = structlog.get_logger("bastion.health")

# /readyz is public: it says which check fails, in words that reveal no path, host or driver
# message. The full reason goes to the server log under the same request id.
PUBLIC_REASONS = {
    "database": "the database is unreachable, unreadable or not at the expected schema",
    "keys": "the master key cannot be used",
}


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive and answering. Says nothing about its dependencies."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"description": "Not ready; the problem lists each failing check."}},
)
def readyz(request: Request, container: ContainerDep) -> Health | Response:
    """Ready to serve: the database answers with its schema, and the master key loads."""
    problems = readiness_problems(container)
    if problems:
        log.warning("health.not_ready", **{f"{name}_reason": r for name, r in problems.items()})
        checks = {name: PUBLIC_REASONS.get(name, "failing") for name in problems}
        return problem_response(
            503,
            detail="; ".join(f"{name}: {reason}" for name, reason in sorted(checks.items()))
            + " (details in the server log)",
            code="health.not_ready",
            slug="not-ready",
            request_id=getattr(request.state, "request_id", None),
            extra={"checks": checks},
        )
    return Health(status="ready")
