"""Every Prometheus metric Bastion exports, in one registry of its own.

Defined once here so that the code which counts and the listener which serves agree on names.
A dedicated registry (not prometheus_client's global one) keeps tests and embedded uses from
colliding. Label values are closed sets (route templates, outcomes, sink kinds), never user input,
so a hostile client cannot blow up the series count.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY: Final = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS: Final = Counter(
    "bastion_http_requests",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY: Final = Histogram(
    "bastion_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    registry=REGISTRY,
)
LOGINS: Final = Counter(
    "bastion_logins",
    "Login attempts by outcome (ok, failed, locked).",
    ["outcome"],
    registry=REGISTRY,
)
LOCKOUTS: Final = Counter("bastion_lockouts", "Accounts locked after failures.", registry=REGISTRY)
SOURCES_BLOCKED: Final = Counter(
    "bastion_sources_blocked",
    "Source addresses blocked for credential stuffing.",
    registry=REGISTRY,
)
RATE_LIMITED: Final = Counter(
    "bastion_rate_limited",
    "Requests refused with 429, by endpoint class.",
    ["endpoint_class"],
    registry=REGISTRY,
)
ALERTS: Final = Counter(
    "bastion_alerts",
    "Alert deliveries by sink kind and outcome (sent, failed).",
    ["sink", "outcome"],
    registry=REGISTRY,
)
AUDIT_CHAIN_HEAD: Final = Gauge(
    "bastion_audit_chain_head_sequence",
    "Sequence number of the newest event of the system chain and of all tenant chains together.",
    ["chain"],
    registry=REGISTRY,
)
KEY_ROTATION: Final = Gauge(
    "bastion_key_rotation_pending",
    "Data-key versions still holding rows that await re-encryption, and the oldest active "
    "version's encryption count as a fraction of its limit.",
    ["measure"],
    registry=REGISTRY,
)
