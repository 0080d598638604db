"""Requests are counted by route template, never by raw path or an arbitrary method."""

from types import SimpleNamespace

from bastion.observability.http import UNMATCHED, observe_request
from bastion.observability.metrics import REGISTRY


def _count(route, method, status):
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("bastion_http_requests_total", labels) or 0


def test_a_request_counts_under_its_route_template_not_its_path():
    template = "/api/v1/tenants/{tenant}/security-events"
    route = SimpleNamespace(path=template)
    before = _count(template, "GET", "2xx")
    for tenant in ("acme", "globex", "x" * 200):
        scope = {"method": "GET", "path": f"/api/v1/tenants/{tenant}/security-events"}
        scope["route"] = route
        observe_request(scope, 200, 0.01)
    assert _count(template, "GET", "2xx") == before + 3
    assert _count("/api/v1/tenants/acme/security-events", "GET", "2xx") == 0


def test_unmatched_paths_and_invented_methods_share_closed_labels():
    before = _count(UNMATCHED, "OTHER", "4xx")
    for number in range(5):
        observe_request({"method": f"HACK{number}", "path": f"/probe/{number}"}, 405, 0.001)
    assert _count(UNMATCHED, "OTHER", "4xx") == before + 5
    assert _count(UNMATCHED, "HACK0", "4xx") == 0


def test_a_request_that_never_answered_is_counted_without_a_status_class():
    before = _count(UNMATCHED, "GET", "none")
    observe_request({"method": "GET", "path": "/"}, 0, 0.5)
    assert _count(UNMATCHED, "GET", "none") == before + 1
