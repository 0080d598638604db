"""Detection: login lockouts, blocked sources, known devices, e-mailed unlock/report links.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LOCK_REASONS = ("failures", "reported")
LINK_PURPOSES = ("unlock", "report")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "login_lockouts",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        # NULL: until the password is changed after locked_at ("this wasn't me").
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_login_lockouts")),
        _user_fk("login_lockouts"),
        sa.CheckConstraint(_in("reason", LOCK_REASONS), name=op.f("ck_login_lockouts_reason")),
    )
    op.create_table(
        "blocked_sources",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_blocked_sources")),
    )
    op.create_table(
        "known_devices",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "fingerprint", name=op.f("pk_known_devices")),
        _user_fk("known_devices"),
    )
    op.create_table(
        "detection_links",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_links")),
        _user_fk("detection_links"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_detection_links_token_hash")),
        sa.CheckConstraint(_in("purpose", LINK_PURPOSES), name=op.f("ck_detection_links_purpose")),
    )
    op.create_index(op.f("ix_detection_links_user_id"), "detection_links", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_detection_links_user_id"), table_name="detection_links")
    op.drop_table("detection_links")
    op.drop_table("known_devices")
    op.drop_table("blocked_sources")
    op.drop_table("login_lockouts")
