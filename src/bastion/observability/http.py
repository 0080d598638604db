"""Counting HTTP requests by route *template* (``/api/v1/tenants/{tenant}``), never raw path.

Raw paths carry ids and attacker-chosen text: as label values they would grow the series count
without bound. The edge middleware calls ``observe_request`` once per request after the app has
answered; Starlette's router has put the matched route in the scope by then. The metric children
are cached per (template, method, status class), so the steady-state cost is a dict lookup, one
counter increment and one histogram observation.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from prometheus_client.metrics import Counter, Histogram

from bastion.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED: Final = "unmatched"  # 404s for paths no route serves, and the edge's own answers
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"})
MAX_CACHED_SERIES: Final = 4096

_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def route_template(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def observe_request(scope: MutableMapping[str, Any], status: int, seconds: float) -> None:
    """Count one answered request and its duration under its route template."""
    template = route_template(scope)
    method = scope.get("method", "OTHER")
    if method not in METHODS:
        method = "OTHER"  # a client can send any token as a method: never a label value
    status_class = status // 100
    key = (template, method, status_class)
    children = _children.get(key)
    if children is None:
        children = _children_for(template, method, status_class)
    counter, histogram = children
    counter.inc()
    histogram.observe(seconds)


def _children_for(template: str, method: str, status_class: int) -> tuple[Counter, Histogram]:
    status_label = f"{status_class}xx" if 1 <= status_class <= 5 else "none"
    children = (
        HTTP_REQUESTS.labels(route=template, method=method, status=status_label),
        HTTP_LATENCY.labels(route=template),
    )
    if len(_children) < MAX_CACHED_SERIES:  # bounded already; the cap is a second wall
        _children[(template, method, status_class)] = children
    return children
