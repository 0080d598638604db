"""Operator actions so far (init, migrations, the bootstrap link, key management) are audited."""

import json
import sqlite3

from bastion.crypto import create_key_file
from tests.support.server import run_cli


def _actions(server, chain):
    result = run_cli("audit", "export", "--tenant", chain, env=server.env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [(e["action"], e.get("details", {})) for e in events if e.get("type") == "event"]


def test_init_migration_link_and_key_actions_land_on_the_chains_and_verify(fresh_server, tmp_path):
    fresh_server.start()
    fresh_server.stop()
    assert run_cli("bootstrap", env=fresh_server.env).returncode == 0
    # No domain provisions tenant keys yet (tenants arrive with the access work): a tenant
    # without keys can still be shredded, which must be recorded all the same.
    new_key = tmp_path / "new.key"
    create_key_file(new_key)
    assert (
        run_cli("keys", "rotate-kek", "--new-key-file", str(new_key), env=fresh_server.env)
    ).returncode == 0
    assert (
        run_cli("keys", "shred", "--tenant", "t-1", "--yes", env=fresh_server.env).returncode == 0
    )

    system = _actions(fresh_server, "system")
    names = [action for action, _ in system]
    assert names[:2] == ["schema.migrated", "key.created"]
    assert names.count("key.created") == 3  # system data key, MAC root, signing key
    assert "system.initialised" in names
    assert names.count("bootstrap.link_issued") == 2  # the first start, then `bastion bootstrap`
    assert "key.master_rotated" in names
    shredded = [details for action, details in system if action == "tenant.shredded"]
    assert shredded == [{"tenant": "t-1", "versions_destroyed": 0}]
    migrated = next(details for action, details in system if action == "schema.migrated")
    assert migrated["before"] == "empty"

    verify = run_cli("audit", "verify", env=fresh_server.env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_failed_audit_write_stops_the_key_action(fresh_server):
    # Make every append fail: without its chain-head table the audit log cannot write.
    with sqlite3.connect(fresh_server.data_dir / "bastion.db") as connection:
        connection.execute("DROP TABLE audit_chain_heads")
    result = run_cli("keys", "shred", "--tenant", "t-2", "--yes", env=fresh_server.env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    with sqlite3.connect(fresh_server.data_dir / "bastion.db") as connection:
        erased = connection.execute(
            "SELECT count(*) FROM crypto_erasures WHERE tenant_id = 't-2'"
        ).fetchone()[0]
    assert erased == 0
