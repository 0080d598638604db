"""What runs periodically, built from the container and the settings."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from bastion.backup.jobs import run_daily_backup
from bastion.bootstrap import (
    Container,
    checkpointer,
    deliver_alerts,
    mail_dispatcher,
    verify_audit_and_alert,
)
from bastion.detection.purge import purge_expired as purge_detection
from bastion.jobs.leases import JobLeases
from bastion.jobs.scheduler import Job, Scheduler
from bastion.records import purge_expired

# Who holds a lease: readable in the table (host and pid), unique per process.
PROCESS_HOLDER = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"
# Leases sized far above a normal run, so a slow run is not overlapped by another instance.
SHORT_JOB_LEASE = timedelta(minutes=10)
# A backstop for the mail worker of `bastion serve` (and the cron path when it is off): each
# message is leased on its own, so this and the worker never send one twice.
MAIL_DELIVERY_INTERVAL = timedelta(minutes=1)
BACKUP_LEASE = timedelta(hours=6)
# The same backstop for alert deliveries (claimed row by row, so never sent twice either).
ALERT_DELIVERY_INTERVAL = timedelta(minutes=1)
DETECTION_PURGE_INTERVAL = timedelta(hours=1)


def job_catalog(container: Container) -> list[Job]:
    """Every periodic job this installation runs, whether by the scheduler or `bastion jobs run`."""
    settings = container.settings.jobs
    jobs = [
        Job(
            name="audit.checkpoint",
            run=lambda: checkpointer(container).run(),
            every=timedelta(seconds=settings.audit_checkpoint_interval_seconds),
            lease=SHORT_JOB_LEASE,
        ),
        Job(
            name="audit.verify",
            run=lambda: verify_audit_and_alert(container),
            every=timedelta(seconds=settings.audit_verify_interval_seconds),
            lease=SHORT_JOB_LEASE,
        ),
        Job(
            name="alerts.deliver",
            run=lambda: deliver_alerts(container),
            every=ALERT_DELIVERY_INTERVAL,
            lease=SHORT_JOB_LEASE,
        ),
        Job(
            name="mail.deliver",
            run=lambda: mail_dispatcher(container, holder=PROCESS_HOLDER).deliver_due(),
            every=MAIL_DELIVERY_INTERVAL,
            lease=SHORT_JOB_LEASE,
        ),
        Job(
            name="detection.purge",
            run=lambda: purge_detection(
                uow=container.uow, audit_log=container.audit_log, clock=container.clock
            ),
            every=DETECTION_PURGE_INTERVAL,
            lease=SHORT_JOB_LEASE,
        ),
        Job(
            name="records.purge",
            run=lambda: purge_expired(
                uow=container.uow,
                audit_log=container.audit_log,
                clock=container.clock,
                grace=timedelta(seconds=container.settings.records.purge_grace_seconds),
            ),
            every=timedelta(seconds=container.settings.records.purge_interval_seconds),
            lease=SHORT_JOB_LEASE,
        ),
    ]
    if settings.daily_backup:
        jobs.append(
            Job(
                name="backup.daily",
                run=lambda: run_daily_backup(container.backup),
                daily_at=container.settings.backup.daily_at,
                lease=BACKUP_LEASE,
            )
        )
    return jobs


def leases_for(container: Container) -> JobLeases:
    return JobLeases(uow=container.uow, clock=container.clock, holder=PROCESS_HOLDER)


def scheduler_for(container: Container) -> Scheduler | None:
    """The scheduler `bastion serve` runs, or None when jobs are left to cron."""
    if not container.settings.jobs.enabled:
        return None
    return Scheduler(job_catalog(container), leases=leases_for(container), clock=container.clock)
