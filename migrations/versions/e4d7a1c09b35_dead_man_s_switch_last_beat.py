"""dead man's switch: each worker's last beat on its heartbeat row

Revision ID: e4d7a1c09b35
Revises: 7c41e0a9b2d3
Create Date: 2026-12-06 23:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "e4d7a1c09b35"
down_revision = "7c41e0a9b2d3"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("worker_heartbeat", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deadman_at", app.db_types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("deadman_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("deadman_detail", sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table("worker_heartbeat", schema=None) as batch_op:
        batch_op.drop_column("deadman_detail")
        batch_op.drop_column("deadman_status")
        batch_op.drop_column("deadman_at")
