"""Identity: WebAuthn credentials and the durable mail outbox.

RESERVED: this revision is being written in this session; until then it changes nothing.

Revision ID: 0013
Revises: 0012
"""

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
