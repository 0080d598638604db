"""Keyring: wrapped data keys, system keys (data, MAC root, signing), erasure ledger, re-encryption
progress. Hand-written so that SQLite and PostgreSQL get the same schema.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("kek_id", sa.String(64), nullable=False),
        sa.Column("encryptions", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "crypto_tenant_keys",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_key_columns(),
        sa.Column("wrapped_index_key", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "version", name=op.f("pk_crypto_tenant_keys")),
    )
    op.create_table(
        "crypto_system_keys",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_key_columns(),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_crypto_system_keys")),
    )
    # One active version per owner, enforced by the database: concurrent rotations cannot both win.
    active_only = sa.text("status = 'active'")
    for table, column in (("crypto_tenant_keys", "tenant_id"), ("crypto_system_keys", "name")):
        op.create_index(
            f"uq_{table}_active",
            table,
            [column],
            unique=True,
            sqlite_where=active_only,
            postgresql_where=active_only,
        )
    op.create_table(
        "crypto_erasures",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("versions_destroyed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crypto_erasures")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_crypto_erasures_tenant_id")),
    )
    op.create_table(
        "crypto_reencryption_jobs",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.String(255), nullable=True),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "target", name=op.f("pk_crypto_reencryption_jobs")),
    )


def downgrade() -> None:
    op.drop_table("crypto_reencryption_jobs")
    op.drop_table("crypto_erasures")
    op.drop_index("uq_crypto_system_keys_active", table_name="crypto_system_keys")
    op.drop_index("uq_crypto_tenant_keys_active", table_name="crypto_tenant_keys")
    op.drop_table("crypto_system_keys")
    op.drop_table("crypto_tenant_keys")
