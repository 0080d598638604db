"""The tenant-governance services of issue 6, built together so the edge holds one object.

``Governance`` bundles tenant settings (``policy``), custom roles (``roles``), break-glass grants
(``break_glass``) and access reviews (``review``). The enforcement half of the settings lives in
``SqlAccess.authorize`` (every tenant request goes through it), which must be given the same
``second_factors`` answer as ``build_governance`` (``bootstrap`` does both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from bastion.access.break_glass import SqlBreakGlass
from bastion.access.policy import PolicyGate, SecondFactorCheck, TenantPolicies
from bastion.access.review import AccessReviews, MemberDirectory
from bastion.access.roles import SqlRoles
from bastion.access.service import SqlAccess
from bastion.audit import AuditLog
from bastion.kernel.clock import Clock


@dataclass(frozen=True, slots=True)
class Governance:
    policies: TenantPolicies
    roles: SqlRoles
    break_glass: SqlBreakGlass
    reviews: AccessReviews
    directory: UserDirectory


class UserDirectory(SecondFactorCheck, MemberDirectory, Protocol):
    """What governance needs from identity (``identity.directory.SqlUserDirectory``)."""

    def user_id_for_email(self, session: Session, email: str) -> str | None: ...


def build_governance(
    *, access: SqlAccess, directory: UserDirectory, audit_log: AuditLog, clock: Clock
) -> Governance:
    gate = PolicyGate(audit_log=audit_log, second_factors=directory)
    return Governance(
        policies=TenantPolicies(gate=gate, audit_log=audit_log, clock=clock),
        roles=SqlRoles(access=access, audit_log=audit_log, clock=clock),
        break_glass=SqlBreakGlass(audit_log=audit_log, clock=clock),
        reviews=AccessReviews(directory=directory, audit_log=audit_log, clock=clock),
        directory=directory,
    )
