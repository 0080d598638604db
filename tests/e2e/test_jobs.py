"""The periodic jobs as an operator runs them from cron."""

import json

from tests.support.server import run_cli


def test_jobs_list_and_run_the_audit_jobs_for_real(fresh_server):
    listing = run_cli("jobs", "list", env=fresh_server.env)
    assert listing.returncode == 0, listing.stderr
    for name in ("audit.checkpoint", "audit.verify", "backup.daily"):
        assert name in listing.stdout
    assert "never" in listing.stdout

    # Init wrote a handful of events; with a checkpoint due every 2 events the job must sign one.
    env = {**fresh_server.env, "BASTION_AUDIT__CHECKPOINT_EVERY_EVENTS": "2"}
    checkpoint = run_cli("jobs", "run", "audit.checkpoint", env=env)
    assert checkpoint.returncode == 0, checkpoint.stderr
    assert "audit.checkpoint: ok" in checkpoint.stdout
    # The checkpoint job signed and exported the system chain's head: a file now exists.
    exported = list((fresh_server.data_dir / "audit-checkpoints").rglob("*.json"))
    assert exported
    assert json.loads(exported[0].read_text())["chain"] == "system"

    verify = run_cli("jobs", "run", "audit.verify", env=fresh_server.env)
    assert verify.returncode == 0, verify.stderr
    assert "audit.verify: ok" in verify.stdout
    assert "audit.checkpoint" in run_cli("jobs", "list", env=fresh_server.env).stdout


def test_an_unknown_job_is_refused_by_name(fresh_server):
    result = run_cli("jobs", "run", "no.such", env=fresh_server.env)
    assert result.returncode == 1
    assert "no job named 'no.such'" in result.stderr
