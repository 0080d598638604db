"""Tenant policy: settings (required MFA, IP allow-list, break-glass approval), custom roles, break-glass grants.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("require_mfa", sa.Boolean(), nullable=False),
        # JSON text: a list of CIDR strings, validated by the service before it is stored.
        sa.Column("ip_allowlist", sa.Text(), nullable=False),
        sa.Column("break_glass_requires_approval", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_settings")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "tenant_roles",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        # JSON text: a list of Permission values (never owner, role or settings management).
        sa.Column("permissions", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_roles")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_roles_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_tenant_roles_tenant_id")),
    )
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("custom_role_id", sa.String(36), nullable=True))
        # RESTRICT: a role still held by a member cannot be deleted (the service answers 409
        # first; this is the second wall).
        batch.create_foreign_key(
            op.f("fk_memberships_custom_role_id_tenant_roles"),
            "tenant_roles",
            ["custom_role_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_index(op.f("ix_memberships_custom_role_id"), ["custom_role_id"])
    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("operator_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(36), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grants")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_break_glass_grants_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["users.id"],
            name=op.f("fk_break_glass_grants_operator_id_users"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "duration_minutes >= 1 AND duration_minutes <= 480",
            name=op.f("ck_break_glass_grants_duration"),
        ),
    )
    op.create_index(
        op.f("ix_break_glass_grants_tenant_id"), "break_glass_grants", ["tenant_id", "operator_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_break_glass_grants_tenant_id"), table_name="break_glass_grants")
    op.drop_table("break_glass_grants")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_index(op.f("ix_memberships_custom_role_id"))
        batch.drop_constraint(
            op.f("fk_memberships_custom_role_id_tenant_roles"), type_="foreignkey"
        )
        batch.drop_column("custom_role_id")
    op.drop_table("tenant_roles")
    op.drop_table("tenant_settings")
