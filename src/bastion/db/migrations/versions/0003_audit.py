"""Audit log: hash-chained events, chain heads, checkpoints, actor pseudonyms.

``audit_events`` also gets triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), and
one that refuses any INSERT which does not extend its chain's head (next sequence number, previous
hash equal to the head's) and then moves the head: a second wall behind the application, so that
only someone able to drop triggers can rewrite history, and the hash chain plus the signed
checkpoints catch them when they do. The head moving inside the INSERT also saves the append a
statement.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The message is matched by bastion.audit.repository (HEAD_MOVED): keep them equal.
_SQLITE_GUARDS = (
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
_POSTGRES_GUARDS = (
    "CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()",
    "CREATE FUNCTION audit_events_extend_head() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE audit_chain_heads SET last_seq = NEW.seq, last_hash = NEW.hash "
    "WHERE chain_id = NEW.chain_id AND last_seq = NEW.seq - 1 AND last_hash = NEW.prev_hash; "
    "IF NOT FOUND THEN RAISE EXCEPTION 'audit chain head moved' "
    "USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END $$",
    "CREATE TRIGGER audit_events_extend_head BEFORE INSERT ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_extend_head()",
)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("chain_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.String(27), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("target", sa.String(256), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("source_ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "seq", name="pk_audit_events"),
    )
    op.create_index(
        "ix_audit_events_chain_id_occurred_at", "audit_events", ["chain_id", "occurred_at"]
    )
    op.create_index("ix_audit_events_chain_id_actor", "audit_events", ["chain_id", "actor"])
    op.create_table(
        "audit_chain_heads",
        sa.Column("chain_id", sa.String(36), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_audit_chain_heads")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("chain_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(27), nullable=False),
        sa.Column("prev_seq", sa.BigInteger(), nullable=False),
        sa.Column("entries_digest", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("webhook_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("chain_id", "seq", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "audit_actors",
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_audit_actors")),
        sa.UniqueConstraint("user_id", name=op.f("uq_audit_actors_user_id")),
    )
    guards = _POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_extend_head ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_extend_head()")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_refuse_change()")
    op.drop_table("audit_actors")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_heads")
    op.drop_index("ix_audit_events_chain_id_actor", table_name="audit_events")
    op.drop_index("ix_audit_events_chain_id_occurred_at", table_name="audit_events")
    op.drop_table("audit_events")
