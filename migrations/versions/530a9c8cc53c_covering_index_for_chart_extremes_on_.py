"""covering index for chart extremes on rollups

Revision ID: 530a9c8cc53c
Revises: 8922cba51b1c
Create Date: 2026-11-25 03:05:55.349296

A long-range chart finds each bucket's lowest and highest hour; with the ranks and
times in the index it never reads the (wide) rollup rows to compare them.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "530a9c8cc53c"
down_revision = "8922cba51b1c"
branch_labels = None
depends_on = None

COLUMNS = ["asset", "account", "hour_start", "low_rank", "low_at", "high_rank", "high_at"]


def upgrade():
    with op.batch_alter_table("position_rollup", schema=None) as batch_op:
        batch_op.create_index("ix_position_rollup_extremes", COLUMNS, unique=False)


def downgrade():
    with op.batch_alter_table("position_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_position_rollup_extremes")
