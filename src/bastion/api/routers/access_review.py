"""``/api/v1/tenants/{tenant}/access-review``: members, roles, second factors, last logins,
API keys and stale entries, as JSON or CSV (``?format=`` or the ``Accept`` header).

Owners and auditors (``access:review:read``). Every read is audited (``access_review.read``).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from bastion.access import Permission, TenantContext
from bastion.access.review import as_csv, as_json
from bastion.api.access import requires
from bastion.api.deps import ClientDep, ContainerDep, SessionDep

router = APIRouter(prefix="/api/v1/tenants/{tenant}/access-review", tags=["access review"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session."},
    403: {"description": "Only owners and auditors read access reviews (audited)."},
    404: {"description": "No such tenant, or the caller is not a member of it."},
}
CSV = "text/csv"
# Only a substring test is made on Accept; a longer header is cut, not refused.
ACCEPT_CHARS_READ = 512


class ReviewFormat(enum.StrEnum):
    JSON = "json"
    CSV = "csv"


@router.get(
    "",
    responses={**PROBLEMS, 200: {"content": {"application/json": {}, CSV: {}}}},
)
def access_review(
    *,
    context: Annotated[TenantContext, requires(Permission.ACCESS_REVIEW_READ)],
    container: ContainerDep,
    session: SessionDep,
    client: ClientDep,
    request: Request,
    export_format: Annotated[ReviewFormat | None, Query(alias="format")] = None,
) -> Response:
    """The tenant's access review. ``?format=csv`` (or ``Accept: text/csv``) answers CSV as an
    attachment; JSON otherwise. Entries unused for 90 days are flagged ``stale``."""
    # Accept is read from the request, not declared as a header parameter: OpenAPI ignores a
    # parameter named Accept (3.1, 4.8.12.1), so the documented contract could not hold it.
    accept = request.headers.get("accept", "")[:ACCEPT_CHARS_READ].lower()
    chosen = export_format or (ReviewFormat.CSV if CSV in accept else ReviewFormat.JSON)
    review = container.governance.reviews.review(
        session,
        tenant_ref=context.tenant_id,
        actor=context.user_id,
        client=client,
        export_format=chosen.value,
    )
    if chosen is ReviewFormat.CSV:
        filename = f"access-review-{review.tenant_slug}.csv"
        return Response(
            content=as_csv(review),
            media_type=f"{CSV}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return JSONResponse(as_json(review))
