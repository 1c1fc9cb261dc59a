"""notification group drops changed_at

Revision ID: 3f9b6d2e8a71
Revises: e4d7a1c09b35
Create Date: 2026-12-06 23:28:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "3f9b6d2e8a71"
down_revision = "e4d7a1c09b35"
branch_labels = None
depends_on = None


def upgrade():
    # A group's pending changes are read from its members' rows now.
    with op.batch_alter_table("notification_group", schema=None) as batch_op:
        batch_op.drop_column("changed_at")


def downgrade():
    with op.batch_alter_table("notification_group", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("changed_at", app.db_types.UTCDateTime(timezone=True), nullable=True)
        )
