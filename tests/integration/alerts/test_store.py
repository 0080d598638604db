"""The security-event store: recording in the caller's transaction, routing, validation, query."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bastion.alerts import InvalidSecurityEvent, InvalidSecurityEventQuery, SecurityEvent, Severity
from bastion.alerts.models import AlertDeliveryRow, SecurityEventRow
from bastion.alerts.query import SecurityEventFilter, search_all, search_tenant
from tests.integration.alerts.conftest import alerts_settings

TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"
SINKS = (
    {"kind": "stdout", "name": "console", "min_severity": "info"},
    {"kind": "email", "name": "oncall", "min_severity": "high", "recipients": ["sec@example.com"]},
)


def _event(type_="login.locked", severity=Severity.HIGH, tenant=None, **details):
    return SecurityEvent(
        type=type_,
        severity=severity,
        subject="user-1",
        source="203.0.113.7",
        tenant_id=tenant,
        details=details,
    )


def _record_then_fail(uow, events, first, error=None, *, then=None):
    """One transaction: a good event, then a failure (an exception, or a bad event)."""
    with uow.begin() as session:
        events.record(session, first)
        if then is not None:
            events.record(session, then)
        if error is not None:
            raise error


def _count(uow, model):
    with uow.begin() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_an_event_is_stored_with_one_delivery_per_sink_its_severity_reaches(uow, make_events):
    events = make_events(alerts_settings(*SINKS))
    with uow.begin() as session:
        high = events.record(session, _event(severity=Severity.HIGH, attempts=5))
        events.record(session, _event(severity=Severity.LOW))
    with uow.begin() as session:
        sinks = session.scalars(
            select(AlertDeliveryRow.sink).where(AlertDeliveryRow.event_id == high.id)
        ).all()
        assert sorted(sinks) == ["console", "oncall"]
        assert session.scalar(select(func.count()).select_from(AlertDeliveryRow)) == 3
        row = session.get(SecurityEventRow, high.id)
        assert (row.type, row.severity, row.subject, row.source) == (
            "login.locked",
            40,
            "user-1",
            "203.0.113.7",
        )
    # The action that caused an event fails: neither the event nor its deliveries remain.
    with pytest.raises(RuntimeError):
        _record_then_fail(uow, events, _event(severity=Severity.CRITICAL), RuntimeError("boom"))
    assert _count(uow, SecurityEventRow) == 2
    assert _count(uow, AlertDeliveryRow) == 3


BAD_EVENTS = [
    _event(type_="Login Locked"),
    _event(type_="nodots"),
    _event(type_="a." + "b" * 70),
    _event(password="hunter2"),
    _event(nested={"api_token": "x"}),
    _event(blob="x" * 5000),
    _event(value=float("nan")),
    _event(obj=object()),
    SecurityEvent(type="login.locked", severity=Severity.HIGH, subject="a\nforged: line"),
    SecurityEvent(type="login.locked", severity=Severity.HIGH, subject=""),
    SecurityEvent(type="login.locked", severity=40, subject="u"),
    SecurityEvent(type="login.locked", severity=Severity.HIGH, subject="u", tenant_id="x" * 37),
]


def test_a_malformed_or_secret_bearing_event_is_refused_and_changes_nothing(uow, make_events):
    events = make_events(alerts_settings(*SINKS))
    for bad in BAD_EVENTS:
        with pytest.raises(InvalidSecurityEvent):
            _record_then_fail(uow, events, _event(type_="login.ok"), then=bad)
    assert _count(uow, SecurityEventRow) == 0
    assert _count(uow, AlertDeliveryRow) == 0


def _seed(uow, make_events, clock):
    events = make_events(alerts_settings())
    recorded = []
    plan = [
        ("login.locked", Severity.HIGH, TENANT_A),
        ("login.new_device", Severity.MEDIUM, TENANT_A),
        ("source.blocked", Severity.HIGH, None),
        ("login.locked", Severity.CRITICAL, TENANT_B),
        ("login.new_device", Severity.LOW, TENANT_A),
    ]
    for index, (type_, severity, tenant) in enumerate(plan):
        clock.set(clock.now() + timedelta(minutes=1))
        with uow.begin() as session:
            recorded.append(events.record(session, _event(type_, severity, tenant, n=index)))
    # Two events in the same instant: the cursor must still neither skip nor repeat.
    with uow.begin() as session:
        recorded.append(events.record(session, _event("login.locked", Severity.INFO, TENANT_A)))
    return recorded


def test_queries_scope_filter_and_page_newest_first(uow, make_events, clock):
    recorded = _seed(uow, make_events, clock)
    _tenant_sees_only_its_own(uow, recorded)
    _pages_cover_every_event_once(uow, recorded)
    _filters_hold(uow, recorded)


def _tenant_sees_only_its_own(uow, recorded):
    with uow.begin() as session:
        page = search_tenant(session, TENANT_A, limit=200)
    own = [r for r in recorded if r.event.tenant_id == TENANT_A]
    assert {item.id for item in page.items} == {r.id for r in own}
    times = [item.occurred_at for item in page.items]
    assert times == sorted(times, reverse=True)
    with uow.begin() as session:
        assert search_tenant(session, "33333333-3333-4333-8333-333333333333").items == ()


def _pages_cover_every_event_once(uow, recorded):
    seen, cursor = [], None
    while True:
        with uow.begin() as session:
            page = search_all(session, limit=2, cursor=cursor)
        seen.extend(item.id for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.id for r in recorded)
    assert len(seen) == len(set(seen))
    times = [next(r for r in recorded if r.id == i).occurred_at for i in seen]
    assert times == sorted(times, reverse=True)


def _filters_hold(uow, recorded):
    with uow.begin() as session:
        locked = search_all(session, SecurityEventFilter(type="login.locked"))
        login = search_all(session, SecurityEventFilter(type="login."))
        high = search_all(session, SecurityEventFilter(min_severity=Severity.HIGH))
        window = search_all(
            session,
            SecurityEventFilter(since=recorded[1].occurred_at, until=recorded[3].occurred_at),
        )
        wildcard = search_all(session, SecurityEventFilter(type="login_%."))
        tenant_b = search_all(session, tenant_id=TENANT_B)
    assert {i.event.type for i in locked.items} == {"login.locked"}
    assert len(login.items) == 5
    assert {i.event.severity for i in high.items} == {Severity.HIGH, Severity.CRITICAL}
    assert [i.id for i in window.items] == [recorded[2].id, recorded[1].id]
    assert wildcard.items == ()  # LIKE wildcards in the filter are literal
    assert [i.id for i in tenant_b.items] == [recorded[3].id]
    for cursor in ["garbage", "czF8bm90LWEtdGltZXx4", "!!", "s1|x|y"]:
        with pytest.raises(InvalidSecurityEventQuery), uow.begin() as session:
            search_all(session, cursor=cursor)
    moment = recorded[0].occurred_at
    with pytest.raises(InvalidSecurityEventQuery), uow.begin() as session:
        search_all(session, SecurityEventFilter(since=moment, until=moment - timedelta(seconds=1)))
