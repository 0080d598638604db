"""The calls tenant A's principals make against tenant B, derived from the live route table.

Nothing here lists routes by hand: every route of the app is classified by its path parameters,
so a route added later (API keys, tenant settings, break-glass...) is attacked the day it is
mounted. A path parameter is filled from B's objects of the same name (``CANDIDATES``), with a
few spellings of B's tenant reference; an unknown parameter gets any of B's ids. Kinds:

- ``B_TENANT``: a ``{tenant}`` route with B's tenant: must answer 404, whatever the method.
- ``A_TENANT_B_OBJECT``: a ``{tenant}`` route with A's own tenant but B's object in another
  parameter: must fail (404, or 403 where A's role lacks the permission, or 4xx validation).
- ``B_OBJECT``: any other route with a path parameter (``/me/sessions/{session_id}``,
  ``/invitations/{token}/accept``, operator routes): must fail.
- ``OWN_READ``: a GET without parameters (``/me``, ``/tenants``...): may succeed, never shows B.

Bodies only need to be plausible: the tenant is resolved before any body matters.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from bastion.api.access import route_access
from tests.isolation.world import Tenant

PARAMETER = re.compile(r"{([a-z_]+)}")
# Routes outside the attack surface: the unauthenticated edge and the bootstrap page.
SKIPPED_PREFIXES = ("/healthz", "/readyz", "/bootstrap", "/api/v1/bootstrap", "/api/v1/auth/")
# Bodies by the last literal segment of the path; anything else gets {}.
BODIES: dict[str, dict[str, Any]] = {
    "members": {"role": "owner"},
    "invitations": {"email": "thief@example.com", "role": "owner"},
    "collections": {"name": "stolen"},
    "records": {"stolen": True},
    "api-keys": {"name": "stolen", "permissions": ["records:record:read"]},
}


class Kind(enum.StrEnum):
    B_TENANT = "b-tenant"
    A_TENANT_B_OBJECT = "a-tenant-b-object"
    B_OBJECT = "b-object"
    OWN_READ = "own-read"


@dataclass(frozen=True)
class Operation:
    kind: Kind
    method: str
    path: str  # the route's template, e.g. /api/v1/tenants/{tenant}/members/{user}

    @property
    def parameters(self) -> list[str]:
        return PARAMETER.findall(self.path)

    def body(self) -> dict[str, Any] | None:
        if self.method not in {"POST", "PUT", "PATCH"}:
            return None
        literal = [part for part in self.path.split("/") if part and "{" not in part]
        return BODIES.get(literal[-1] if literal else "", {})


def operations(app: FastAPI) -> list[Operation]:
    found = []
    for route in route_access(app):  # the effective routes, as requests reach them
        if route.path.startswith(SKIPPED_PREFIXES):
            continue
        parameters = PARAMETER.findall(route.path)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            if "tenant" in parameters:
                found.append(Operation(Kind.B_TENANT, method, route.path))
                if len(parameters) > 1:
                    found.append(Operation(Kind.A_TENANT_B_OBJECT, method, route.path))
            elif parameters:
                found.append(Operation(Kind.B_OBJECT, method, route.path))
            elif method == "GET":
                found.append(Operation(Kind.OWN_READ, method, route.path))
    return found


def tenant_refs(tenant: Tenant) -> list[str]:
    """Ways to name a tenant: id, slug, and spellings a sloppy lookup might also accept."""
    return [tenant.id, tenant.slug, tenant.id.upper(), tenant.slug.upper(), f" {tenant.slug}"]


def candidates(b: Tenant, parameter: str) -> list[str]:
    if parameter == "token":
        # A token B's invitee holds is unknown to A; A can only try B's ids or a guess.
        return [*b.objects["invitation"], str(uuid.uuid4())]
    known = b.objects.get(parameter)
    if known:
        return known
    return [value for values in b.objects.values() for value in values]
