"""Migration 0011 goes up, down and up again on both backends."""

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from bastion.db import make_engine
from bastion.db.schema import SCRIPT_LOCATION

TABLES = {"login_lockouts", "blocked_sources", "known_devices", "detection_links"}


def _migrate(engine, action, revision):
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def test_0011_upgrades_downgrades_and_upgrades_again(database_url):
    engine = make_engine(database_url, create=True)
    try:
        _migrate(engine, command.upgrade, "0011")
        assert set(inspect(engine).get_table_names()) >= TABLES
        _migrate(engine, command.downgrade, "0010")
        assert not TABLES & set(inspect(engine).get_table_names())
        _migrate(engine, command.upgrade, "0011")
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
