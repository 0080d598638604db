"""The master key at start-up and the `bastion keys` commands, against real processes."""

from __future__ import annotations

import sqlite3

from bastion.crypto import create_key_file
from tests.support.server import run_cli


def _keyring_rows(data_dir):
    connection = sqlite3.connect(data_dir / "bastion.db")
    try:
        return connection.execute(
            "SELECT name, version, wrapped_key, kek_id, encryptions FROM crypto_system_keys "
            "ORDER BY name, version"
        ).fetchall()
    finally:
        connection.close()


def test_a_different_master_key_stops_start_up_and_changes_nothing(fresh_server, tmp_path):
    key_file = fresh_server.data_dir / "master.key"
    right_key = key_file.read_bytes()
    before = _keyring_rows(fresh_server.data_dir)
    other = tmp_path / "other.key"
    create_key_file(other)
    key_file.write_bytes(other.read_bytes())  # a valid key, just not this keyring's

    fresh_server.spawn()
    assert fresh_server.wait_exit() != 0
    output = fresh_server.output()
    assert "Traceback" not in output
    # Structured log records (JSON, e.g. alembic's schema check) aside, one line says why.
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, output
    assert lines[0].startswith("bastion: the master key in ")
    assert "does not match the keyring" in lines[0]
    assert "nothing was changed" in lines[0]
    assert _keyring_rows(fresh_server.data_dir) == before

    # `bastion init` with the wrong key refuses too, instead of adding keys under it.
    result = run_cli("init", env=fresh_server.env)
    assert result.returncode != 0
    assert "does not match the keyring" in result.stderr
    assert _keyring_rows(fresh_server.data_dir) == before

    key_file.write_bytes(right_key)
    fresh_server.start()


def test_kek_rotation_through_the_cli_then_the_server_starts(fresh_server, tmp_path):
    new_key = tmp_path / "new.key"
    create_key_file(new_key)
    public_before = run_cli("keys", "export-public", env=fresh_server.env)
    assert public_before.returncode == 0
    assert public_before.stdout.startswith("-----BEGIN PUBLIC KEY-----")

    result = run_cli("keys", "rotate-kek", "--new-key-file", str(new_key), env=fresh_server.env)
    assert result.returncode == 0, result.stderr
    assert "rewrapped 3 keys" in result.stdout
    assert (fresh_server.data_dir / "master.key").read_bytes() == new_key.read_bytes()
    assert (fresh_server.data_dir / "master.key").stat().st_mode & 0o777 == 0o600
    again = run_cli("keys", "rotate-kek", "--new-key-file", str(new_key), env=fresh_server.env)
    assert again.returncode == 0
    assert "rewrapped 0 keys" in again.stdout

    public_after = run_cli("keys", "export-public", env=fresh_server.env)
    assert public_after.stdout == public_before.stdout
    fresh_server.start()
    assert fresh_server.client.get("/readyz").status_code == 200


def test_key_commands_fail_with_one_line(fresh_server):
    result = run_cli("keys", "rotate", "--tenant", "no-such-tenant", env=fresh_server.env)
    assert result.returncode == 1
    assert result.stderr.strip() == "bastion: no data key was provisioned for tenant no-such-tenant"
    result = run_cli("keys", "shred", "--tenant", "t-1", "--yes", env=fresh_server.env)
    assert result.returncode == 0
    assert "tenant t-1 erased at" in result.stdout
    result = run_cli("keys", "rotate", "--tenant", "t-1", env=fresh_server.env)
    assert result.returncode == 1
    assert "erased" in result.stderr
    assert "Traceback" not in result.stderr


def test_readyz_reports_a_master_key_rotated_under_a_running_server(fresh_server, tmp_path):
    fresh_server.start()
    assert fresh_server.client.get("/readyz").status_code == 200
    new_key = tmp_path / "new.key"
    create_key_file(new_key)
    result = run_cli("keys", "rotate-kek", "--new-key-file", str(new_key), env=fresh_server.env)
    assert result.returncode == 0, result.stderr
    # The running process still holds the old key: not ready, and it says why.
    ready = fresh_server.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["keys"] == "the master key cannot be used"
    assert "does not match the keyring" in fresh_server.output()
    fresh_server.stop()
    fresh_server.start()
    assert fresh_server.client.get("/readyz").status_code == 200
