"""`bastion audit verify` and `bastion audit export`, driven through the real Typer app."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from tests.integration.audit.conftest import TENANT, append_many
from tests.support.audit import tamper


@pytest.fixture
def cli(monkeypatch, database_url, tmp_path, checkpoint_dir):
    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_DATABASE_URL", database_url)
    monkeypatch.setenv("BASTION_AUDIT__CHECKPOINT_DIR", str(checkpoint_dir))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def public_key_file(keyring, tmp_path):
    path = tmp_path / "audit-signing.pem"
    path.write_bytes(keyring.public_key_pem())
    return path


def test_verify_passes_on_an_intact_log(cli, engine, audit_log, checkpointer, public_key_file):
    append_many(engine, audit_log, 20, checkpointer=checkpointer)
    result = cli("audit", "verify", "--public-key", str(public_key_file))
    assert result.exit_code == 0, result.output
    assert f"ok       chain {TENANT}: 20 entries" in result.output
    assert "signed through 20" in result.output


def test_verify_names_the_damage_and_fails(cli, engine, audit_log, checkpointer, public_key_file):
    append_many(engine, audit_log, 20, checkpointer=checkpointer)
    tamper(engine, f"DELETE FROM audit_events WHERE chain_id = '{TENANT}' AND seq = 8")  # noqa: S608
    result = cli("audit", "verify", "--tenant", TENANT, "--public-key", str(public_key_file))
    assert result.exit_code == 1
    assert "first bad sequence number 8 (deleted)" in result.output


def test_verify_without_a_key_says_signatures_were_not_checked(cli, engine, audit_log):
    append_many(engine, audit_log, 2)
    result = cli("audit", "verify")
    assert result.exit_code == 0
    assert "signatures NOT checked" in result.output


@pytest.fixture
def fifteen_events(engine, audit_log, checkpointer):
    append_many(engine, audit_log, 15, checkpointer=checkpointer)


@pytest.mark.usefixtures("fifteen_events")
def test_export_then_verify_the_file_offline(cli, public_key_file, tmp_path):
    exported = cli("audit", "export", "--tenant", TENANT)
    assert exported.exit_code == 0
    export_file = tmp_path / "export.jsonl"
    export_file.write_text(exported.stdout)
    result = cli(
        "audit", "verify", "--file", str(export_file), "--public-key", str(public_key_file)
    )
    assert result.exit_code == 0, result.output
    assert "signed through 10" in result.output
    export_file.write_text(exported.stdout.replace('"record:3"', '"record:33"'))
    result = cli(
        "audit", "verify", "--file", str(export_file), "--public-key", str(public_key_file)
    )
    assert result.exit_code == 1
    assert "first bad sequence number 3 (edited)" in result.output


def test_offline_verification_needs_a_public_key(cli, tmp_path):
    export_file = tmp_path / "export.jsonl"
    export_file.write_text("")
    result = cli("audit", "verify", "--file", str(export_file))
    assert result.exit_code == 1
    assert "--public-key" in result.output


def test_a_bad_tenant_id_is_a_clear_error(cli):
    result = cli("audit", "export", "--tenant", "../etc")
    assert result.exit_code == 1
    assert "not a valid chain id" in result.output


def test_with_the_real_keyring_checkpoints_sign_and_customers_verify_offline(monkeypatch, tmp_path):
    """End to end on SQLite: init, audited actions, checkpoint job, public key, both verifiers."""
    from bastion.audit import AuditEvent
    from bastion.bootstrap import build
    from bastion.settings import load_settings

    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, list(args))

    assert run("init").exit_code == 0
    container = build(load_settings())
    for number in range(3):
        with container.uow.begin() as session:
            container.audit_log.append(
                session, AuditEvent(action="record.created", tenant_id=TENANT, target=f"r:{number}")
            )
    container.engine.dispose()
    checkpointed = run("audit", "checkpoint", "--force")
    assert checkpointed.exit_code == 0, checkpointed.output
    assert "exported" in checkpointed.output
    pem = run("audit", "public-key").stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    verified = run("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "signed through 3" in verified.output
    export_file = tmp_path / "export.jsonl"
    export_file.write_text(run("audit", "export", "--tenant", TENANT).stdout)
    key_file = tmp_path / "bastion-audit.pem"
    key_file.write_text(pem)
    offline = run("audit", "verify", "--file", str(export_file), "--public-key", str(key_file))
    assert offline.exit_code == 0, offline.output
    assert "signed through 3" in offline.output
