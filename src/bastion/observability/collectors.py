"""Gauges read at scrape time: audit chain heads and key-rotation state.

They describe the database, which other processes change too, so they are read fresh on every
scrape rather than pushed by whoever changes them. Read-only and aggregate (no tenant ids, no key
material): two small queries on the owner connection. They name the audit and keyring tables
directly, as the policy checks do; ``tests/integration/alerts/test_metrics.py`` fails if those
tables change shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine, column, func, select, table

from bastion.observability.metrics import AUDIT_CHAIN_HEAD, KEY_ROTATION

SYSTEM_CHAIN: Final = "system"  # bastion.audit.SYSTEM_CHAIN; kept here to stay read-only
# AES-GCM with random nonces: a data key is rotated before 2^32 encryptions (DESIGN "Keys").
ENCRYPTION_LIMIT: Final = 2**32

_heads = table("audit_chain_heads", column("chain_id"), column("last_seq"))
_tenant_keys = table("crypto_tenant_keys", column("status"), column("encryptions"))
_system_keys = table("crypto_system_keys", column("status"), column("encryptions"))


def refresh_audit_heads(engine: Engine) -> None:
    """bastion_audit_chain_head_sequence{chain="system"} and {chain="tenants"} (summed)."""
    is_system = _heads.c.chain_id == SYSTEM_CHAIN
    with engine.connect() as connection:
        system = connection.scalar(select(func.max(_heads.c.last_seq)).where(is_system))
        tenants = connection.scalar(select(func.sum(_heads.c.last_seq)).where(~is_system))
    AUDIT_CHAIN_HEAD.labels(chain="system").set(int(system or 0))
    AUDIT_CHAIN_HEAD.labels(chain="tenants").set(int(tenants or 0))


def refresh_key_rotation(engine: Engine) -> None:
    """bastion_key_rotation_pending{measure=...}:

    ``superseded_versions``: data-key versions replaced by a rotation but not yet retired (their
    rows still await re-encryption); ``active_encryption_fraction``: the most-used active key's
    encryption count over the 2^32 limit (rotation is due well before 1.0).
    """
    superseded = 0
    most_used = 0
    with engine.connect() as connection:
        for keys in (_tenant_keys, _system_keys):
            superseded += int(
                connection.scalar(
                    select(func.count()).select_from(keys).where(keys.c.status == "superseded")
                )
                or 0
            )
            used = connection.scalar(
                select(func.max(keys.c.encryptions)).where(keys.c.status == "active")
            )
            most_used = max(most_used, int(used or 0))
    KEY_ROTATION.labels(measure="superseded_versions").set(superseded)
    KEY_ROTATION.labels(measure="active_encryption_fraction").set(most_used / ENCRYPTION_LIMIT)


def refreshers_for(engine: Engine) -> list[Callable[[], None]]:
    """The scrape-time refreshers of the metrics listener, over the owner engine."""

    def audit_chain_heads() -> None:
        refresh_audit_heads(engine)

    def key_rotation() -> None:
        refresh_key_rotation(engine)

    return [audit_chain_heads, key_rotation]
