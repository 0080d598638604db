"""API keys: tenant-bound, hashed, with permissions, expiry and last use.

``api_keys`` is tenant-owned (``tenant_id``), but a request presenting a key is authenticated by
looking the key up by its SHA-256 digest *before* any tenant context exists (as sessions are).
Row-level security on PostgreSQL must therefore let the application read a row by
``token_hash`` without a tenant context (or authenticate through a narrowly scoped function);
every other query names the tenant.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("tail", sa.String(4), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("last_used_at", nullable=True),
        _when("revoked_at", nullable=True),
        sa.Column("revoked_by", sa.String(36), nullable=True),
        sa.Column("revoke_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_keys_token_hash")),
    )
    op.create_index("ix_api_keys_tenant_id_user_id", "api_keys", ["tenant_id", "user_id"])
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_user_id"), table_name="api_keys")
    op.drop_index("ix_api_keys_tenant_id_user_id", table_name="api_keys")
    op.drop_table("api_keys")
