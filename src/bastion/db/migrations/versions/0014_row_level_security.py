"""PostgreSQL row-level security on every tenant-owned table.

RESERVED: this revision is being written in this session; until then it changes nothing.

Revision ID: 0014
Revises: 0013
"""

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
