"""The tenant context of a transaction, for PostgreSQL row-level security (migration 0014).

The application's own scoping (every repository query names its tenant) is the first wall; on
PostgreSQL, policies over these transaction-local settings are the second. Each ``bind_*`` call
runs ``set_config(name, value, true)``: the value lasts until the transaction ends, so a pooled
connection never carries one request's tenant into the next. With no context bound, the policies
see no tenant row at all (``current_setting(name, true)`` is NULL or empty, equal to nothing).

The settings are not a credential: any SQL the application role runs could set them. What they
catch is the application forgetting a tenant predicate, not an attacker who runs arbitrary SQL
(docs/access.md, "Row-level security").

SQLite has no row-level security: there the calls do nothing and the application's scoping is
the only guard.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

TENANT_SETTING: Final = "bastion.tenant_id"
USER_SETTING: Final = "bastion.user_id"
TOKEN_SETTING: Final = "bastion.token_hash"  # noqa: S105 - a setting name, not a secret

# Session.info key: False when the session's role is not bound by row-level security (the owner,
# PostgreSQL without database.app_url), so binding would be a wasted round trip per request.
TENANT_CONTEXT_INFO: Final = "bastion.tenant_context"

_SET_LOCAL: Final = text("SELECT set_config(:name, :value, true)")


def _bind(target: Session | Connection, name: str, value: str) -> None:
    if isinstance(target, Session):
        if target.info.get(TENANT_CONTEXT_INFO) is False:
            return
        dialect = target.get_bind().dialect
    else:
        dialect = target.dialect  # a Connection: bound inside its own transaction (begin())
    if dialect.name != "postgresql":
        return
    target.execute(_SET_LOCAL, {"name": name, "value": value})


def bind_tenant(session: Session | Connection, tenant_id: str) -> None:
    """Let this transaction see (and write) the rows of ``tenant_id`` and of no other tenant.

    Call it once the tenant is known from the caller's membership, never from client input
    alone. Binding another tenant later in the same transaction replaces the first.
    """
    _bind(session, TENANT_SETTING, tenant_id)


def bind_user(session: Session, user_id: str) -> None:
    """Let this transaction see ``user_id``'s own memberships (and their tenants), before any
    tenant is chosen: listing "my tenants" and resolving ``{tenant}`` need exactly that."""
    _bind(session, USER_SETTING, user_id)


def bind_token_digest(session: Session, digest: bytes) -> None:
    """Let this transaction see the tenant-owned row whose ``token_hash`` is ``digest``.

    For bearer capabilities (an invitation, an API key) looked up by digest before their tenant
    is known: holding the token is what entitles the caller to that one row.
    """
    _bind(session, TOKEN_SETTING, digest.hex())
