"""The container's wiring: audit verification raises a CRITICAL security event for a damaged
chain, and the scrape-time gauges read the audit heads and key-rotation state."""

import pytest
from sqlalchemy import select, text

from bastion.alerts import Severity
from bastion.alerts.models import AlertDeliveryRow
from bastion.alerts.query import search_all
from bastion.bootstrap import build, initialise, verify_audit_and_alert
from bastion.observability.collectors import refresh_audit_heads, refresh_key_rotation
from bastion.observability.metrics import REGISTRY
from tests.support.audit import tamper

CRITICAL_ONLY = {"sinks": [{"kind": "stdout", "name": "console", "min_severity": "critical"}]}


@pytest.fixture
def container(database_url, make_settings):
    settings = make_settings(database_url=database_url, alerts=CRITICAL_ONLY)
    initialise(settings)
    container = build(settings)
    yield container
    container.engine.dispose()


def test_a_damaged_audit_chain_records_a_critical_security_event(container):
    assert verify_audit_and_alert(container).ok
    with container.uow.begin() as session:
        assert search_all(session).items == ()  # a healthy chain raises nothing

    # One more byte in the hashed entries (the columns are derived from them, migration 0015).
    tamper(
        container.engine, "UPDATE audit_events SET entry = entry || ' ' WHERE chain_id = 'system'"
    )
    report = verify_audit_and_alert(container)

    assert not report.ok
    with container.uow.begin() as session:
        [stored] = search_all(session).items
        deliveries = session.scalars(select(AlertDeliveryRow.sink)).all()
    event = stored.event
    assert (event.type, event.severity, event.tenant_id) == (
        "audit.chain_damaged",
        Severity.CRITICAL,
        None,
    )
    assert event.details == {"chain": "system", "first_bad_seq": 1, "kind": "edited"}
    assert deliveries == ["console"]


def _gauge(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_scrape_time_gauges_read_audit_heads_and_key_rotation(container):
    with container.engine.connect() as connection:
        head = connection.scalar(
            text("SELECT last_seq FROM audit_chain_heads WHERE chain_id = 'system'")
        )
    refresh_audit_heads(container.engine)
    refresh_key_rotation(container.engine)
    assert _gauge("bastion_audit_chain_head_sequence", chain="system") == head
    assert _gauge("bastion_audit_chain_head_sequence", chain="tenants") == 0
    before = _gauge("bastion_key_rotation_pending", measure="superseded_versions")

    container.keyring.rotate_system_key()
    refresh_audit_heads(container.engine)
    refresh_key_rotation(container.engine)

    assert _gauge("bastion_key_rotation_pending", measure="superseded_versions") == before + 1
    fraction = _gauge("bastion_key_rotation_pending", measure="active_encryption_fraction")
    assert 0 <= fraction < 1
    # The rotation itself was audited: the system head moved with it.
    assert _gauge("bastion_audit_chain_head_sequence", chain="system") > head
