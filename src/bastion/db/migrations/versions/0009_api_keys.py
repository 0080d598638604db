"""API keys: tenant-bound, hashed, with permissions, expiry and last use.

RESERVED: this revision is being written in this session; until then it changes nothing.

Revision ID: 0009
Revises: 0008
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
