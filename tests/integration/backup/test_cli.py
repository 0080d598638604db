"""`bastion backup …` end to end through the Typer app (one installation, every command)."""

import json

from typer.testing import CliRunner

from bastion.cli.main import app


def test_the_backup_commands(settings, container, tmp_path):
    env = {"BASTION_ENV": "test", "BASTION_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(app, ["backup", *args], env=env)
        assert result.exit_code == code, result.output
        return result.output

    created = run("create")
    backup_id = created.split()[1]
    assert backup_id.startswith("bk-")
    assert backup_id in run("list")
    assert "ok  " in run("verify", backup_id)
    restored = run("restore", backup_id, "--data-dir", str(tmp_path / "restored"))
    assert "audit" in restored
    assert "erasures" in restored
    assert "already exists" in run(
        "restore", backup_id, "--data-dir", str(tmp_path / "restored"), code=1
    )
    assert "drill          ok" in run("drill")
    assert "drill          ok" in run("drill", "--last")
    assert "fresh          yes" in run("status")
    assert "kept         1 backups" in run("prune")

    manifest = settings.backup_dir / backup_id / "manifest.json"
    document = json.loads(manifest.read_text())
    document["chunks"][0]["bytes"] += 1
    manifest.write_text(json.dumps(document))
    assert "does not verify" in run("verify", backup_id, code=1)
    assert "no good backups" in run("list")
    assert "FAILED" in run("drill", code=1)
