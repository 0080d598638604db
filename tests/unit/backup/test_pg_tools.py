"""pg_dump/pg_restore lookup and the subprocess environment built from the database URL."""

import pytest

from bastion.backup import BackupToolMissing
from bastion.backup.snapshot import pg_command, pg_tool


def test_a_missing_pg_dump_names_the_version_and_the_package(tmp_path):
    with pytest.raises(BackupToolMissing, match="pg_dump for PostgreSQL 99 not found") as raised:
        pg_tool("pg_dump", 99, None)
    assert "postgresql-client-99" in raised.value.detail
    assert "BASTION_BACKUP__PG_BIN_DIR" in raised.value.detail
    with pytest.raises(BackupToolMissing, match=str(tmp_path)):
        pg_tool("pg_restore", 15, tmp_path)


def test_the_password_goes_through_the_environment_not_the_command_line():
    command = pg_command("postgresql://bastion:s3cret@db.internal:5433/prod?sslmode=require")
    assert "s3cret" not in command.dsn
    assert command.dsn == "postgresql://bastion@db.internal:5433/prod?sslmode=require"
    assert command.env["PGPASSWORD"] == "s3cret"
    # Nothing inherited: the child sees only what it needs.
    assert set(command.env) == {"PGPASSWORD", "PGCONNECT_TIMEOUT", "LC_ALL"}


def test_no_password_no_pgpassword():
    assert "PGPASSWORD" not in pg_command("postgresql://postgres@127.0.0.1/x").env
