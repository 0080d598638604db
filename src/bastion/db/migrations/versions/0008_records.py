"""Records: collections (schema, indexed fields, read auditing), encrypted records, blind-index entries.

RESERVED: this revision is being written in this session; until then it changes nothing.

Revision ID: 0008
Revises: 0007
"""

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
