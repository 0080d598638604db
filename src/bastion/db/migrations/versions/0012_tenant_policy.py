"""Tenant policy: settings (required MFA, IP allow-list, break-glass approval), custom roles, break-glass grants.

RESERVED: this revision is being written in this session; until then it changes nothing.

Revision ID: 0012
Revises: 0011
"""

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
