"""Records: collections (schema, indexed fields, read auditing), encrypted records, blind-index entries.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("json_schema", sa.Text(), nullable=True),
        sa.Column("indexed_fields", sa.Text(), nullable=False),
        sa.Column("audit_reads", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_collections_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_collections_tenant_id")),
    )
    op.create_table(
        "records",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("collection_id", sa.String(36), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_records_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_records_collection_id_collections"),
            ondelete="CASCADE",
        ),
    )
    # Listing pages through one collection in id order; the purge job finds expired deletions.
    op.create_index(
        op.f("ix_records_collection_id"), "records", ["collection_id", "tenant_id", "id"]
    )
    op.create_index(op.f("ix_records_deleted_at"), "records", ["deleted_at"])
    op.create_table(
        "record_index_entries",
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("collection_id", sa.String(36), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "field", name=op.f("pk_record_index_entries")),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
            name=op.f("fk_record_index_entries_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_record_index_entries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_record_index_entries_collection_id"),
        "record_index_entries",
        ["collection_id", "field", "digest"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_record_index_entries_collection_id"), table_name="record_index_entries")
    op.drop_table("record_index_entries")
    op.drop_index(op.f("ix_records_deleted_at"), table_name="records")
    op.drop_index(op.f("ix_records_collection_id"), table_name="records")
    op.drop_table("records")
    op.drop_table("collections")
