"""Audit: store each event's hashed canonical text in ``entry``; derive the query columns from it.

Before, the verifier re-encoded every row from its 13 columns to hash it (bastion/audit/canonical.py
then described the bytes; it still does). Now the exact text the chain hashes is stored, written
in the same INSERT as its hash, and occurred_at, tenant_id, actor, action, target, outcome,
source_ip, user_agent, request_id and details become generated columns computed from it by the
database (VIRTUAL ``json_extract`` on SQLite, STORED ``entry::json ->> ..`` on PostgreSQL), so
none of them can be edited without breaking the hash (bastion/audit/derived.py).

Upgrade, per backend, in the migration's transaction:

1. every existing row's entry is built from its columns with the version-1 encoder (the template
   below, the same bytes the verifier hashed until now) and checked against the row's own hash
   with its own prev_hash. A row that does not match was edited after it was written: the
   migration stops and changes nothing, naming the row, since converting it would fix whatever
   the edit left behind in a new shape. (Links between rows are not needed here: a deleted or
   swapped row is carried over exactly and the verifier still names it.)
2. SQLite: the table is rebuilt (a column cannot become generated in place) and its indexes and
   append-only triggers recreated as migration 0003 made them. PostgreSQL: entry is added and
   filled (the append-only trigger is paused for that UPDATE, inside this transaction), the old
   columns are dropped and re-added as generated ones (one table rewrite); the row-level security
   policies that read tenant_id are saved from pg_policies and recreated as they were.

Downgrade turns the generated columns back into plain ones holding the same values, and drops
entry.

Revision ID: 0015
Revises: 0014
"""

import hashlib
import json
from json.encoder import encode_basestring
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# (column, entry member, SQL type, nullable in 0003, JSON text?)
DERIVED = (
    ("occurred_at", "time", "VARCHAR(27)", False, False),
    ("tenant_id", "tenant", "VARCHAR(36)", True, False),
    ("actor", "actor", "VARCHAR(64)", True, False),
    ("action", "action", "VARCHAR(128)", False, False),
    ("target", "target", "VARCHAR(256)", True, False),
    ("outcome", "outcome", "VARCHAR(16)", False, False),
    ("source_ip", "source_ip", "VARCHAR(45)", True, False),
    ("user_agent", "user_agent", "VARCHAR(512)", True, False),
    ("request_id", "request_id", "VARCHAR(128)", True, False),
    ("details", "details", "TEXT", False, True),
)
OLD_COLUMNS = (
    "chain_id, seq, occurred_at, tenant_id, actor, action, target, outcome, source_ip, "
    "user_agent, request_id, details, prev_hash, hash"
)
INDEXES = (
    "CREATE INDEX ix_audit_events_chain_id_occurred_at ON audit_events (chain_id, occurred_at)",
    "CREATE INDEX ix_audit_events_chain_id_actor ON audit_events (chain_id, actor)",
)
# Migration 0003's SQLite guards, recreated after the rebuild (dropping a table drops them).
SQLITE_GUARDS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events "
    "WHEN NOT EXISTS (SELECT 1 FROM audit_chain_heads h WHERE h.chain_id = NEW.chain_id "
    "AND h.last_seq = NEW.seq - 1 AND h.last_hash = NEW.prev_hash) "
    "BEGIN SELECT RAISE(ABORT, 'audit chain head moved'); END",
    "CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events "
    "BEGIN UPDATE audit_chain_heads SET last_seq = NEW.seq, last_hash = NEW.hash "
    "WHERE chain_id = NEW.chain_id; END",
)
# Version 1 of the entry format, frozen here so that this migration never changes with the code.
_TEMPLATE = (
    '{"action":%s,"actor":%s,"chain":%s,"details":%s,"outcome":%s,"request_id":%s,"seq":%d,'
    '"source_ip":%s,"target":%s,"tenant":%s,"time":%s,"user_agent":%s,"v":1}'
)
_FETCH_ROWS = 2_000


def _sqlite_expression(member: str) -> str:
    return f"json_extract(entry, '$.{member}')"


def _postgres_expression(member: str, as_json: bool) -> str:
    if as_json:
        return f"((entry::json -> '{member}')::text)"
    return f"(entry::json ->> '{member}')"


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _entry(row: Any) -> str:
    chain, seq, time, tenant, actor, action, target, outcome, source_ip, user_agent = row[:10]
    request_id, details = row[10], row[11]
    return _TEMPLATE % (
        _text(action), _text(actor), _text(chain), details, _text(outcome), _text(request_id),
        seq, _text(source_ip), _text(target), _text(tenant), _text(time), _text(user_agent),
    )  # fmt: skip


def _checked_entries(connection: sa.Connection) -> Any:
    """Yield (chain_id, seq, entry, prev_hash, hash) for every row, each checked against its
    own hash; raise RuntimeError (the migration then changes nothing) at the first that fails."""
    result = connection.execute(
        sa.text(f"SELECT {OLD_COLUMNS} FROM audit_events ORDER BY chain_id, seq")  # noqa: S608
    )
    while rows := result.fetchmany(_FETCH_ROWS):
        for row in rows:
            prev_hash, row_hash = row[12], row[13]
            try:
                entry = _entry(row)
                digest = hashlib.sha256(bytes.fromhex(prev_hash) + entry.encode("utf-8"))
                ok = digest.hexdigest() == row_hash and isinstance(json.loads(entry), dict)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise RuntimeError(
                    f"audit_events row {row[0]}/{row[1]} does not match its hash: it was changed "
                    "after it was written. Run `bastion audit verify` with the previous version; "
                    "nothing was migrated."
                )
            yield row[0], row[1], entry, prev_hash, row_hash


def _sqlite_table(name: str, derived: bool) -> str:
    if derived:
        columns = "entry TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL, "
        columns += ", ".join(
            f"{column} {kind} GENERATED ALWAYS AS ({_sqlite_expression(member)}) VIRTUAL"
            for column, member, kind, _, _ in DERIVED
        )
    else:
        columns = ", ".join(
            f"{column} {kind}{'' if nullable else ' NOT NULL'}"
            for column, _, kind, nullable, _ in DERIVED
        )
        columns += ", prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL"
    return (
        f"CREATE TABLE {name} (chain_id VARCHAR(36) NOT NULL, seq BIGINT NOT NULL, {columns}, "
        "CONSTRAINT pk_audit_events PRIMARY KEY (chain_id, seq))"
    )


def _sqlite_swap_in(name: str) -> None:
    op.execute("DROP TABLE audit_events")  # its indexes and triggers go with it
    op.execute(f"ALTER TABLE {name} RENAME TO audit_events")
    for statement in (*INDEXES, *SQLITE_GUARDS):
        op.execute(statement)


def _saved_policies(connection: sa.Connection) -> list[str]:
    """CREATE POLICY statements recreating audit_events' policies as they are; drops them."""
    rows = connection.execute(
        sa.text(
            "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = current_schema() AND tablename = 'audit_events'"
        )
    ).all()
    statements = []
    for name, permissive, roles, command, using, check in rows:
        to = ", ".join("PUBLIC" if role == "public" else f'"{role}"' for role in roles)
        sql = f'CREATE POLICY "{name}" ON audit_events AS {permissive} FOR {command} TO {to}'
        if using is not None:
            sql += f" USING ({using})"
        if check is not None:
            sql += f" WITH CHECK ({check})"
        statements.append(sql)
        op.execute(f'DROP POLICY "{name}" ON audit_events')
    return statements


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        _upgrade_postgres(connection)
        return
    op.execute(_sqlite_table("audit_events_0015", derived=True))
    insert = sa.text(
        "INSERT INTO audit_events_0015 (chain_id, seq, entry, prev_hash, hash) "
        "VALUES (:c, :s, :e, :p, :h)"
    )
    batch: list[dict[str, object]] = []
    for chain, seq, entry, prev_hash, row_hash in _checked_entries(connection):
        batch.append({"c": chain, "s": seq, "e": entry, "p": prev_hash, "h": row_hash})
        if len(batch) >= _FETCH_ROWS:
            connection.execute(insert, batch)
            batch = []
    if batch:
        connection.execute(insert, batch)
    _sqlite_swap_in("audit_events_0015")


def _upgrade_postgres(connection: sa.Connection) -> None:
    entries = list(_checked_entries(connection))
    op.execute("ALTER TABLE audit_events ADD COLUMN entry text")
    if entries:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        update = sa.text("UPDATE audit_events SET entry = :e WHERE chain_id = :c AND seq = :s")
        connection.execute(update, [{"c": c, "s": s, "e": e} for c, s, e, _, _ in entries])
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    op.execute("ALTER TABLE audit_events ALTER COLUMN entry SET NOT NULL")
    policies = _saved_policies(connection)
    drops = ", ".join(f"DROP COLUMN {column}" for column, *_ in DERIVED)
    adds = ", ".join(
        f"ADD COLUMN {column} {kind} GENERATED ALWAYS AS "
        f"({_postgres_expression(member, as_json)}) STORED"
        for column, member, kind, _, as_json in DERIVED
    )
    op.execute(f"ALTER TABLE audit_events {drops}, {adds}")
    for statement in (*INDEXES, *policies):
        op.execute(statement)


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        policies = _saved_policies(connection)
        expressions = ", ".join(f"ALTER COLUMN {column} DROP EXPRESSION" for column, *_ in DERIVED)
        op.execute(f"ALTER TABLE audit_events {expressions}")
        required = ", ".join(
            f"ALTER COLUMN {column} SET NOT NULL"
            for column, _, _, nullable, _ in DERIVED
            if not nullable
        )
        op.execute(f"ALTER TABLE audit_events {required}, DROP COLUMN entry")
        for statement in policies:
            op.execute(statement)
        return
    op.execute(_sqlite_table("audit_events_0014", derived=False))
    op.execute(
        f"INSERT INTO audit_events_0014 ({OLD_COLUMNS}) "  # noqa: S608 - constants only
        f"SELECT {OLD_COLUMNS} FROM audit_events ORDER BY chain_id, seq"
    )
    _sqlite_swap_in("audit_events_0014")
