"""Helpers for the tenant-governance tests (issue 6): services over a real database, the edge's
audited-refusal commit, and a confirmed second factor without a phone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import update

from bastion.access import SqlAccess
from bastion.access.governance import Governance, build_governance
from bastion.alerts import SqlSecurityEvents
from bastion.audit import AuditFilter, AuditLog, AuditQuery
from bastion.errors import AppError
from bastion.identity.directory import SqlUserDirectory
from bastion.identity.models import TotpCredential, User
from bastion.settings import AlertsSettings
from tests.support.identity import CLIENT, Rig

PASSWORD = "correct horse battery staple"


@dataclass
class Stack:
    rig: Rig
    access: SqlAccess
    governance: Governance
    audit_log: AuditLog

    def user(self, name: str, *, operator: bool = False) -> str:
        with self.rig.uow.begin() as session:
            user_id = self.rig.identity.signup(
                session, email=f"{name}@example.com", password=PASSWORD, name=None, client=CLIENT
            ).id
            if operator:
                session.execute(update(User).where(User.id == user_id).values(is_operator=True))
        return user_id

    def enrol_second_factor(self, user_id: str) -> None:
        # A confirmed credential row is what identity counts; the TOTP flow has its own tests.
        with self.rig.uow.begin() as session:
            session.add(
                TotpCredential(
                    user_id=user_id,
                    secret_sealed=b"not-used-here",
                    created_at=self.rig.clock.now(),
                    confirmed_at=self.rig.clock.now(),
                )
            )

    @contextmanager
    def edge(self) -> Iterator:
        """One request transaction as the API runs it: an audited refusal commits what the
        service wrote to record it, then propagates; any other error rolls back."""
        refusal: AppError | None = None
        with self.rig.uow.begin() as session:
            try:
                yield session
            except AppError as exc:
                if not exc.audited_refusal:
                    raise
                refusal = exc
        if refusal is not None:
            raise refusal

    def actions(self, tenant_id: str | None, prefix: str = "") -> list:
        """The tenant's audit records (oldest first) whose action starts with ``prefix``."""
        with self.rig.uow.begin() as session:
            page = AuditQuery(audit_log=self.audit_log).search(
                session, tenant_id, AuditFilter(), limit=200
            )
        return [item for item in reversed(page.items) if item.action.startswith(prefix)]


def make_stack(rig: Rig, audit_log: AuditLog) -> Stack:
    directory = SqlUserDirectory(keys=rig.keyring)
    access = SqlAccess(
        keys=rig.keyring,
        audit_log=audit_log,
        clock=rig.clock,
        second_factors=directory,
        signals=SqlSecurityEvents(settings=AlertsSettings(), clock=rig.clock),
    )
    governance = build_governance(
        access=access, directory=directory, audit_log=audit_log, clock=rig.clock
    )
    return Stack(rig=rig, access=access, governance=governance, audit_log=audit_log)
