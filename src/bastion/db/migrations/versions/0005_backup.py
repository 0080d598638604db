"""Backup: restore-drill results.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_drills",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("backup_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("recovery_point", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("restored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("tables", sa.Integer(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_drills")),
    )
    op.create_index(
        op.f("ix_backup_drills_started_at"), "backup_drills", ["started_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_backup_drills_started_at"), table_name="backup_drills")
    op.drop_table("backup_drills")
