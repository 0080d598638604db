"""`bastion alerts test`: a test event through every sink its severity reaches, exit 1 otherwise."""

import json

from typer.testing import CliRunner

from bastion.bootstrap import initialise
from bastion.cli.main import app
from bastion.settings import Settings
from tests.integration.alerts.conftest import WEBHOOK_SECRET


def test_a_test_alert_reports_each_sink_and_fails_while_one_does_not_take_it(monkeypatch, tmp_path):
    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    initialise(Settings(_env_file=None, env="test", data_dir=tmp_path / "data"))
    runner = CliRunner()

    monkeypatch.setenv("BASTION_ALERTS__SINKS", "[]")
    nowhere = runner.invoke(app, ["alerts", "test"])
    assert nowhere.exit_code == 1
    assert "no alert sink receives severity critical" in nowhere.output

    sinks = [
        {"kind": "stdout", "name": "console", "min_severity": "info"},
        # Nothing listens on the discard port: refused at once.
        {"kind": "webhook", "name": "dead", "url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET},
    ]
    monkeypatch.setenv("BASTION_ALERTS__SINKS", json.dumps(sinks))
    result = runner.invoke(app, ["alerts", "test", "--severity", "high"])
    assert result.exit_code == 1, result.output
    assert '"type": "alerts.test"' in result.output  # the stdout sink's line
    lines = result.output.splitlines()
    assert any(line.startswith("console") and line.rstrip().endswith("sent") for line in lines)
    assert any(line.startswith("dead") and "pending (webhook unreachable" in line for line in lines)

    monkeypatch.setenv("BASTION_ALERTS__SINKS", json.dumps(sinks[:1]))
    assert runner.invoke(app, ["alerts", "test", "--severity", "low"]).exit_code == 0
