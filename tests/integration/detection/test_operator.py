"""Operators end blocks and locks early (service and `bastion detection` CLI), audited."""

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from bastion.bootstrap import build
from bastion.cli.main import app
from bastion.detection import repository
from bastion.identity import ClientInfo, InvalidCredentials
from bastion.settings import load_settings
from tests.integration.detection.conftest import PASSWORD
from tests.support.identity import CHEAP_ARGON2_ENV

STUFFER = ClientInfo(ip="2001:db8:5:6::1", user_agent="x")


def test_an_operator_unblocks_a_source_and_releases_a_reported_lock(rig):
    user_id = rig.signup("alice@example.com")
    for n in range(4):
        with pytest.raises(InvalidCredentials):
            rig.login(f"user{n}@example.com", "leaked password", STUFFER)
    with rig.uow.begin() as session:
        (block,) = rig.detection.blocks(session)
        assert block.source == "2001:db8:5:6::/64"
        assert rig.detection.unblock(session, address="2001:db8:5:6::99", actor_user_id=None)
    with rig.uow.begin() as session:
        assert rig.detection.blocks(session) == []
        repository.lock(
            session, user_id, reason="reported", failures=0, now=rig.clock.now(), until=None
        )
    with pytest.raises(InvalidCredentials):
        rig.login("alice@example.com", PASSWORD)
    with rig.uow.begin() as session:
        assert rig.detection.release(session, user_id=user_id, actor_user_id=None)
    assert rig.login("alice@example.com", PASSWORD).token


def test_the_cli_lists_and_ends_blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    for name, value in CHEAP_ARGON2_ENV.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    container = build(load_settings())
    try:
        now = container.clock.now()
        with container.uow.begin() as session:
            repository.block(
                session, "198.51.100.9", reason="failures", now=now, until=now + timedelta(hours=1)
            )
    finally:
        container.engine.dispose()
    listed = runner.invoke(app, ["detection", "blocks"])
    assert listed.exit_code == 0
    assert "198.51.100.9" in listed.output
    assert "unblocked" in runner.invoke(app, ["detection", "unblock", "198.51.100.9"]).output
    assert "no source is blocked" in runner.invoke(app, ["detection", "blocks"]).output
    unknown = runner.invoke(app, ["detection", "unlock", "nobody@example.com"])
    assert unknown.exit_code == 1
