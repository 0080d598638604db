"""`bastion keys … --system`: the system data key's rotation, re-encryption and retirement through
the real Typer app and the real container (every domain's columns registered by bootstrap)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bastion.bootstrap import build, initialise
from bastion.cli.main import app
from bastion.crypto.models import SystemKey
from bastion.kernel.clock import SystemClock
from tests.integration.crypto.system_rows import insert_rows, open_all, sealed_values, version_of


@pytest.fixture
def settings(make_settings, database_url):
    settings = make_settings(database_url=database_url)
    initialise(settings)
    return settings


@pytest.fixture
def cli(monkeypatch, settings):
    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("BASTION_DATABASE_URL", settings.resolved_database_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def container(settings):
    container = build(settings)
    yield container
    container.engine.dispose()


def _age_superseded_versions(engine):
    # The CLI runs on the wall clock: move the supersession back instead of waiting 2 minutes.
    with engine.begin() as connection:
        connection.execute(
            update(SystemKey)
            .where(SystemKey.superseded_at.is_not(None))
            .values(superseded_at=SystemClock().now() - timedelta(minutes=5))
        )


def test_system_rotation_round_trip_through_the_cli(cli, container):
    insert_rows(container.keyring, container.engine, users=3, mails=3)
    before = open_all(container.keyring, container.engine)

    result = cli("keys", "rotate", "--system")
    assert result.exit_code == 0, result.output
    assert "system: data key version 2 is active" in result.output
    assert "bastion keys reencrypt --system" in result.output

    _age_superseded_versions(container.engine)
    refused = cli("keys", "retire", "--system", "--version", "1")
    assert refused.exit_code == 1
    assert "still use system data-key version 1" in refused.output

    result = cli("keys", "reencrypt", "--system")
    assert result.exit_code == 0, result.output
    assert "system:users.email_sealed: 3 re-encrypted of 3 scanned" in result.output
    assert "system:mail_outbox.sealed: 3 re-encrypted of 3 scanned" in result.output
    assert {version_of(sealed) for sealed in sealed_values(container.engine).values()} == {2}

    result = cli("keys", "retire", "--system", "--version", "1")
    assert result.exit_code == 0, result.output
    assert "system: data key version 1 retired" in result.output
    listed = cli("keys", "versions", "--system")
    assert [line.split()[:2] for line in listed.output.splitlines()] == [
        ["1", "retired"],
        ["2", "active"],
    ]

    container.keyring.forget()
    assert open_all(container.keyring, container.engine) == before


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "rotate"),
        ("keys", "rotate", "--system", "--tenant", "t-1"),
        ("keys", "reencrypt"),
        ("keys", "versions", "--tenant", "t-1", "--system"),
    ],
)
def test_tenant_or_system_exactly_one(cli, args):
    result = cli(*args)
    assert result.exit_code == 1
    assert "give exactly one of --tenant <tenant id> or --system" in result.output
