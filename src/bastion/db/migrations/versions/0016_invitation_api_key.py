"""Access: remember the API key an invitation was sent with.

An invitation sent through an API key must not outlive that key: revoking a leaked key has to
withdraw what it set in motion, as removing a member withdraws the invitations they sent.
``invited_with_api_key`` is NULL for invitations sent from a signed-in session (and for every
invitation sent before this revision, whose origin is not known).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invitations") as batch:
        batch.add_column(sa.Column("invited_with_api_key", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invitations") as batch:
        batch.drop_column("invited_with_api_key")
