"""Tenant settings: a required second factor, an IP allow-list, break-glass approval.

``PolicyGate.enforce`` runs on every tenant request, after the membership is resolved and before
any permission is checked (``SqlAccess.authorize``): the allow-list first (P27, "network access is
controlled"), then the second-factor requirement (ASVS 5.0 V6.3.3). Both refusals are 403
problems written to the tenant's chain. Settings are read from the database on each request,
like memberships, so a change applies to the very next request in every process.

``TenantPolicies`` reads and changes the settings. A change that would shut the caller out (an
allow-list without the caller's current address, or a second-factor requirement the caller
does not meet) is refused with 409 unless the caller confirms it (``confirm_lockout``): a typo in
a CIDR must not lock the only owner out, as in Okta's and Keycloak's admin consoles.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bastion.access import recording
from bastion.access.errors import (
    InvalidPolicy,
    IpNotAllowed,
    PermissionDenied,
    PolicyLockout,
    TenantMfaRequired,
)
from bastion.access.models import TenantSettingsRow
from bastion.access.permissions import Permission
from bastion.access.types import AccessAction, TenantContext
from bastion.alerts.types import SecurityEvent, Severity
from bastion.audit import AuditLog, Outcome
from bastion.audit.events import JsonValue
from bastion.identity import ClientInfo
from bastion.kernel.clock import Clock

MAX_ALLOWLIST_ENTRIES: Final = 100
MAX_CIDR_CHARS: Final = 49  # an IPv6 address with a prefix length, with room to spare

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SecondFactorCheck(Protocol):
    """Whether a user has a confirmed second factor (identity's ``UserDirectory`` answers)."""

    def has_second_factor(self, session: Session, user_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """A tenant's settings. The defaults are what a tenant without a settings row gets."""

    require_mfa: bool = False
    ip_allowlist: tuple[str, ...] = ()
    break_glass_requires_approval: bool = True
    networks: tuple[Network, ...] = field(default=(), repr=False, compare=False)

    def allows_address(self, ip: str | None) -> bool:
        """True when the allow-list is empty or contains ``ip``; an unknown address is refused
        (fail closed) whenever a list exists."""
        if not self.networks:
            return True
        address = _address(ip)
        if address is None:
            return False
        return any(address.version == net.version and address in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A PATCH: None leaves a setting as it is."""

    require_mfa: bool | None = None
    ip_allowlist: tuple[str, ...] | None = None
    break_glass_requires_approval: bool | None = None
    confirm_lockout: bool = False


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; match them to IPv4 lists.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_allowlist(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Canonical networks for ``entries``; ValueError naming the first bad one.

    Host bits must be zero (``10.0.0.1/8`` is refused, not silently widened); a bare address is
    a single-host network. Duplicates are dropped.
    """
    if len(entries) > MAX_ALLOWLIST_ENTRIES:
        raise ValueError(f"at most {MAX_ALLOWLIST_ENTRIES} entries")
    networks: list[Network] = []
    for entry in entries:
        if len(entry) > MAX_CIDR_CHARS:
            raise ValueError("an entry is too long to be a CIDR")
        try:
            network = ipaddress.ip_network(entry.strip(), strict=True)
        except ValueError:
            raise ValueError(f"{entry[:MAX_CIDR_CHARS]!r} is not a CIDR network") from None
        if network not in networks:
            networks.append(network)
    return tuple(networks)


@functools.lru_cache(maxsize=1024)
def _policy(
    require_mfa: bool, ip_allowlist: str, break_glass_requires_approval: bool
) -> TenantPolicy:
    # Cached by the stored values themselves (never by tenant): every tenant request reads its
    # settings, and parsing the same allow-list again each time is pure repetition. A change is
    # a different key, so it applies on the very next request.
    stored = tuple(str(entry) for entry in json.loads(ip_allowlist))
    return TenantPolicy(
        require_mfa=require_mfa,
        ip_allowlist=stored,
        break_glass_requires_approval=break_glass_requires_approval,
        networks=parse_allowlist(stored),
    )


_SETTINGS = TenantSettingsRow.__table__
# One plain-column SELECT per tenant request (no ORM entity), built once.
_READ_SETTINGS: Final = select(
    _SETTINGS.c.require_mfa, _SETTINGS.c.ip_allowlist, _SETTINGS.c.break_glass_requires_approval
).where(_SETTINGS.c.tenant_id == bindparam("tenant_id"))


def read_policy(session: Session, tenant_id: str) -> TenantPolicy:
    """The tenant's settings as stored now (defaults when it never changed them)."""
    row = session.execute(_READ_SETTINGS, {"tenant_id": tenant_id}).one_or_none()
    if row is None:
        return TenantPolicy()
    return _policy(
        bool(row.require_mfa), str(row.ip_allowlist), bool(row.break_glass_requires_approval)
    )


class RepeatedSignals(Protocol):
    """Security events recorded at most once a window (``alerts.SqlSecurityEvents``)."""

    def record_once(
        self, session: Session, event: SecurityEvent, *, within: timedelta
    ) -> object | None: ...


IP_REFUSED_EVENT: Final = "access.ip_refused"
# One alert per member (or API key) and address an hour: a refused client retries with every
# request, and its owners need to know that it happens, not how often.
IP_REFUSED_ALERT_WINDOW: Final = timedelta(hours=1)


class PolicyGate:
    """Enforces a tenant's allow-list and second-factor requirement on each request.

    A request the allow-list refuses came with a valid credential of a member (or of an API
    key) from a network the tenant does not allow: perhaps a member travelling, perhaps a stolen
    token used elsewhere. Besides the audit entry, it raises a MEDIUM security event for the
    tenant (its owners see it with their other security events; alert sinks route it), once an
    hour per member or key and address.
    """

    def __init__(
        self,
        *,
        audit_log: AuditLog,
        second_factors: SecondFactorCheck | None,
        signals: RepeatedSignals | None = None,
    ) -> None:
        self._audit = audit_log
        self._second_factors = second_factors
        self._signals = signals

    def has_second_factor(self, session: Session, user_id: str) -> bool:
        # Without an identity directory nothing can be proved: fail closed.
        return self._second_factors is not None and self._second_factors.has_second_factor(
            session, user_id
        )

    def enforce(self, session: Session, context: TenantContext, *, client: ClientInfo) -> None:
        """Return when the tenant's policy admits this request; otherwise audit and raise
        IpNotAllowed or TenantMfaRequired (403)."""
        policy = read_policy(session, context.tenant_id)
        if not policy.allows_address(client.ip):
            self._refuse(session, context, AccessAction.IP_REFUSED, client)
            self._signal_ip_refusal(session, context, client)
            raise IpNotAllowed
        if policy.require_mfa and not self.has_second_factor(session, context.user_id):
            self._refuse(session, context, AccessAction.MFA_REQUIRED_REFUSED, client)
            raise TenantMfaRequired

    def _signal_ip_refusal(
        self, session: Session, context: TenantContext, client: ClientInfo
    ) -> None:
        if self._signals is None:
            return
        by_key = context.api_key_id is not None
        event = SecurityEvent(
            type=IP_REFUSED_EVENT,
            severity=Severity.MEDIUM,
            subject=context.api_key_id if context.api_key_id is not None else context.user_id,
            source=client.ip,
            tenant_id=context.tenant_id,
            details={"credential": "api_key" if by_key else "session", "user": context.user_id},
        )
        self._signals.record_once(session, event, within=IP_REFUSED_ALERT_WINDOW)

    def _refuse(
        self, session: Session, context: TenantContext, action: AccessAction, client: ClientInfo
    ) -> None:
        recording.record(
            self._audit,
            session,
            context.tenant_id,
            action,
            actor=context.user_id,
            target=None,
            client=client,
            outcome=Outcome.DENIED,
        )


class TenantPolicies:
    """Reads and changes tenant settings; every change and refusal is on the tenant's chain."""

    def __init__(self, *, gate: PolicyGate, audit_log: AuditLog, clock: Clock) -> None:
        self._gate = gate
        self._audit = audit_log
        self._clock = clock

    def get(self, session: Session, context: TenantContext) -> TenantPolicy:
        return read_policy(session, context.tenant_id)

    def update(
        self, session: Session, context: TenantContext, change: PolicyChange, *, client: ClientInfo
    ) -> TenantPolicy:
        """Apply ``change``. InvalidPolicy (422) for a bad or oversized allow-list; PolicyLockout
        (409) when it would shut the caller out and ``confirm_lockout`` is not set. Refusals
        change nothing and are audited."""
        current = read_policy(session, context.tenant_id)
        if (
            context.api_key_id is not None
            and current.break_glass_requires_approval
            and change.break_glass_requires_approval is False
        ):
            # Letting operators in is a person's decision in a signed-in session, never a
            # key's (api_key_policy.NOT_FOR_KEYS): lifting approval would be that decision.
            self._refuse(session, context, client, reason="an API key cannot lift approval")
            raise PermissionDenied(permission=Permission.BREAK_GLASS_APPROVE.value)
        allowlist = current.ip_allowlist
        networks = current.networks
        if change.ip_allowlist is not None:
            try:
                networks = parse_allowlist(change.ip_allowlist)
            except ValueError as exc:
                self._refuse(session, context, client, reason=str(exc))
                raise InvalidPolicy(str(exc)) from None
            allowlist = tuple(str(network) for network in networks)
        updated = TenantPolicy(
            require_mfa=current.require_mfa if change.require_mfa is None else change.require_mfa,
            ip_allowlist=allowlist,
            break_glass_requires_approval=(
                current.break_glass_requires_approval
                if change.break_glass_requires_approval is None
                else change.break_glass_requires_approval
            ),
            networks=networks,
        )
        if not change.confirm_lockout:
            self._check_lockout(session, context, updated, client=client)
        self._store(session, context, updated)
        recording.record(
            self._audit,
            session,
            context.tenant_id,
            AccessAction.SETTINGS_CHANGED,
            actor=context.user_id,
            target=context.tenant_id,
            client=client,
            details={"from": _describe(current), "to": _describe(updated)},
        )
        return updated

    def _check_lockout(
        self, session: Session, context: TenantContext, policy: TenantPolicy, *, client: ClientInfo
    ) -> None:
        if not policy.allows_address(client.ip):
            reason = "the allow-list does not contain your current address"
        elif policy.require_mfa and not self._gate.has_second_factor(session, context.user_id):
            reason = "you have no second factor; enrol one first"
        else:
            return
        self._refuse(session, context, client, reason=reason)
        raise PolicyLockout(f"This change would lock you out: {reason}. Send confirm_lockout.")

    def _store(self, session: Session, context: TenantContext, policy: TenantPolicy) -> None:
        row = session.get(TenantSettingsRow, context.tenant_id)
        if row is None:
            row = TenantSettingsRow(tenant_id=context.tenant_id)
            session.add(row)
        row.require_mfa = policy.require_mfa
        row.ip_allowlist = json.dumps(list(policy.ip_allowlist))
        row.break_glass_requires_approval = policy.break_glass_requires_approval
        row.updated_at = self._clock.now()
        row.updated_by = context.user_id
        session.flush()

    def _refuse(
        self, session: Session, context: TenantContext, client: ClientInfo, *, reason: str
    ) -> None:
        recording.record(
            self._audit,
            session,
            context.tenant_id,
            AccessAction.SETTINGS_REFUSED,
            actor=context.user_id,
            target=context.tenant_id,
            client=client,
            outcome=Outcome.DENIED,
            details={"reason": reason},
        )


def _describe(policy: TenantPolicy) -> dict[str, JsonValue]:
    return {
        "require_mfa": policy.require_mfa,
        "ip_allowlist": list(policy.ip_allowlist),
        "break_glass_requires_approval": policy.break_glass_requires_approval,
    }
