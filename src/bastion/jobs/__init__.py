"""Jobs: the in-process scheduler and the catalogue of periodic work (audit checkpoints and
verification, the daily backup). An edge like ``api`` and ``cli``: it calls domain services and
owns no domain logic. Every job is also runnable once from the CLI (`bastion jobs run NAME`), for
cron or Kubernetes CronJobs, and a database lease makes a job started twice at once (two
instances, or a scheduler and a cron entry) run only once.
"""

from bastion.jobs.catalog import job_catalog, leases_for, scheduler_for
from bastion.jobs.leases import JobLeases
from bastion.jobs.scheduler import Job, Scheduler

__all__ = ["Job", "JobLeases", "Scheduler", "job_catalog", "leases_for", "scheduler_for"]
