"""Detection: who is guessing passwords, from where, and from which new devices (issue 8).

Owns the ``login_lockouts``, ``blocked_sources``, ``known_devices`` and ``detection_links``
tables, the sliding-window counters (process memory or a shared Redis, through ``limits``), the
``LoginGuard`` identity calls, and the unlock and "this wasn't me" link flows. Records security
events through ``bastion.alerts`` and counts Prometheus metrics; never imports the api, cli or
web edges, never commits, never stores a raw address history (devices are keyed MACs).
"""

from bastion.detection.counters import Counters
from bastion.detection.errors import (
    CountersUnavailable,
    DetectionError,
    LinkInvalid,
    SourceBlocked,
)
from bastion.detection.guard import SqlLoginGuard
from bastion.detection.service import AccountRevoker, Detection

__all__ = [
    "AccountRevoker",
    "Counters",
    "CountersUnavailable",
    "Detection",
    "DetectionError",
    "LinkInvalid",
    "SourceBlocked",
    "SqlLoginGuard",
]
