"""`bastion jobs …`: the periodic jobs, for cron or a Kubernetes CronJob instead of `serve`'s
scheduler."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.bootstrap import build
from bastion.cli.context import clear_failures, console, fail, settings_from
from bastion.jobs import job_catalog
from bastion.jobs.catalog import leases_for
from bastion.jobs.scheduler import run_once
from bastion.logs import configure_logging

jobs_app = typer.Typer(help="Run or list the periodic jobs.", no_args_is_help=True)


@jobs_app.command("list")
def list_jobs(ctx: typer.Context) -> None:
    """Each job, its schedule and its last run (from any instance)."""
    container = build(settings_from(ctx))
    leases = leases_for(container)
    with clear_failures():
        for job in job_catalog(container):
            when = f"every {job.every}" if job.every else f"daily at {job.daily_at} UTC"
            finished, outcome = leases.last_run(job.name)
            last = f"{finished.isoformat()} ({outcome})" if finished else "never"
            console.print(f"{job.name:18} {when:24} last run: {last}", highlight=False)


@jobs_app.command("run")
def run_job(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The job, e.g. audit.verify.")]
) -> None:
    """Run one job now, unless another process is running it. Exit 1 if it failed."""
    settings = settings_from(ctx)
    configure_logging(settings.log)
    container = build(settings)
    with clear_failures():
        jobs = {job.name: job for job in job_catalog(container)}
        if name not in jobs:
            fail(f"no job named {name!r}; known: {', '.join(sorted(jobs))}")
        outcome = run_once(jobs[name], leases_for(container))
    console.print(f"{name}: {outcome}", highlight=False)
    if outcome == "failed":
        raise typer.Exit(1)
