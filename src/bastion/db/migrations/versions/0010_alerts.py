"""Security events and alert deliveries (outbox with retries).

RESERVED: this revision is being written in this session; until then it changes nothing.

Revision ID: 0010
Revises: 0009
"""

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
