"""Start-up: first run, clear refusals, the bootstrap link, readiness."""

import os
import re
import socket
import sqlite3

import pytest

from tests.support.server import run_cli

LINK = re.compile(r"https://127\.0\.0\.1:\d+/bootstrap\?token=([A-Za-z0-9_-]+)")


def _refuses(server, expected):
    process = server.spawn()
    assert server.wait_exit() != 0
    output = server.output()
    assert expected in output
    assert "Traceback" not in output
    return process


def test_init_creates_key_0600_certificate_and_database(fresh_server):
    data = fresh_server.data_dir
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600
    assert (data / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert (data / "bastion.db").stat().st_mode & 0o777 == 0o600
    assert (data / "tls" / "cert.pem").is_file()
    key_before = (data / "master.key").read_bytes()
    fresh_server.init()  # a second init keeps the key
    assert (data / "master.key").read_bytes() == key_before


def test_bootstrap_link_is_printed_once_and_its_token_is_checked(fresh_server):
    fresh_server.start()
    links = LINK.findall(fresh_server.output())
    assert len(links) == 1
    token = links[0]
    # The token does not appear in any log line, only in the one-time banner.
    assert fresh_server.output().count(token) == 1

    valid = fresh_server.client.get("/bootstrap", params={"token": token})
    assert valid.status_code == 200
    assert valid.json()["path"] == "/api/v1/bootstrap"
    forged = fresh_server.client.get("/bootstrap", params={"token": "A" * 43})
    assert forged.status_code == 401
    assert forged.json()["code"] == "identity.bootstrap_token_invalid"

    operator = {"email": "root@example.com", "password": "correct horse battery staple"}
    created = fresh_server.client.post("/api/v1/bootstrap", json={"token": token, **operator})
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "root@example.com"
    # Single use: the same token neither checks nor redeems again.
    again = {"token": token, "email": "second@example.com", "password": operator["password"]}
    assert fresh_server.client.post("/api/v1/bootstrap", json=again).status_code == 401
    assert fresh_server.client.get("/bootstrap", params={"token": token}).status_code == 401
    login = fresh_server.client.post("/api/v1/auth/login", json=operator)
    assert login.status_code == 200
    me = fresh_server.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {login.json()['token']}"}
    )
    assert me.json()["is_operator"] is True

    fresh_server.stop()
    fresh_server.start()  # the second start prints no link
    assert len(LINK.findall(fresh_server.output())) == 1


def test_a_world_readable_key_file_stops_start_up(fresh_server):
    key = fresh_server.data_dir / "master.key"
    key.chmod(0o644)
    _refuses(fresh_server, "is readable by other users (mode 0644); run `chmod 600")


def test_a_missing_certificate_stops_start_up(fresh_server):
    (fresh_server.data_dir / "tls" / "cert.pem").unlink()
    _refuses(fresh_server, "TLS certificate file")


def test_a_port_in_use_stops_start_up(fresh_server):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", fresh_server.port))
        squatter.listen()
        _refuses(fresh_server, f"port {fresh_server.port} on 127.0.0.1 is already in use")


def test_a_corrupt_database_stops_start_up(fresh_server):
    database = fresh_server.data_dir / "bastion.db"
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    database.write_bytes(b"this is not a database" * 100)
    _refuses(fresh_server, "is not a SQLite database")


def test_an_unmigrated_database_stops_start_up_saying_what_to_run(fresh_server):
    with sqlite3.connect(fresh_server.data_dir / "bastion.db") as connection:
        connection.execute("DROP TABLE alembic_version")
    _refuses(fresh_server, "run `bastion migrate` first")


def test_readyz_turns_503_when_the_database_becomes_unreadable(fresh_server):
    fresh_server.start()
    assert fresh_server.client.get("/readyz").status_code == 200
    database = fresh_server.data_dir / "bastion.db"
    if os.geteuid() == 0:
        # Root ignores permission bits; taking the file away is what "unreadable" means to root.
        database.rename(database.with_suffix(".moved"))
    else:
        database.chmod(0)
    response = fresh_server.client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "database" in response.json()["checks"]
    assert fresh_server.client.get("/healthz").status_code == 200


def test_readyz_turns_503_when_the_key_file_goes_bad(fresh_server):
    fresh_server.start()
    (fresh_server.data_dir / "master.key").chmod(0o640)
    response = fresh_server.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["keys"] == "the master key cannot be used"
    # The public answer names no path; the operator finds the reason in the log.
    assert "master.key" not in response.text
    assert "readable by other users" in fresh_server.output()


def test_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy(tmp_path):
    from tests.support.server import ServerProcess

    trusting = ServerProcess(
        tmp_path / "t", env={"BASTION_HTTP__TRUSTED_PROXIES": '["127.0.0.1/32"]'}
    )
    trusting.init()
    trusting.start()
    try:
        trusting.client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    finally:
        trusting.stop()
    assert '"client_ip": "203.0.113.9"' in trusting.output()

    untrusting = ServerProcess(tmp_path / "u")
    untrusting.init()
    untrusting.start()
    try:
        untrusting.client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    finally:
        untrusting.stop()
    assert "203.0.113.9" not in untrusting.output()
    assert '"client_ip": "127.0.0.1"' in untrusting.output()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BASTION_PORT", "not-a-port", "BASTION_PORT: Input should be a valid integer"),
        ("BASTION_NO_SUCH_THING", "1", "BASTION_NO_SUCH_THING: unknown setting"),
    ],
)
def test_bad_settings_exit_2_naming_the_key(tmp_path, variable, value, message):
    result = run_cli("serve", env={"BASTION_DATA_DIR": str(tmp_path), variable: value})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_config_show_redacts_secrets(tmp_path):
    result = run_cli(
        "config",
        "show",
        env={
            "BASTION_DATA_DIR": str(tmp_path),
            "BASTION_DATABASE_URL": "postgresql://app:hunter2@db.internal/bastion",
            "BASTION_CRYPTO__KEY_BASE64": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "c2VjcmV0" not in result.stdout
    assert "db.internal" in result.stdout


def test_help_lists_every_command():
    result = run_cli("--help", env={})
    for command in ("init", "serve", "migrate", "config", "version"):
        assert command in result.stdout
    assert run_cli("version", env={}).stdout.strip() == "0.1.0"
