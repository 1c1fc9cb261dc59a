"""hourly position rollups

Revision ID: 8922cba51b1c
Revises: 19d976e6280f
Create Date: 2026-11-25 00:56:51.157161

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "8922cba51b1c"
down_revision = "19d976e6280f"
branch_labels = None
depends_on = None


def upgrade():
    # Keyed by (asset, account, hour_start): a chart's buckets are index ranges of it.
    op.create_table(
        "position_rollup",
        sa.Column("asset", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("hour_start", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("first_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("first_amount", app.db_types.ExactDecimal(), nullable=False),
        sa.Column("first_price", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_amount", app.db_types.ExactDecimal(), nullable=False),
        sa.Column("last_price", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("low_id", sa.BigInteger(), nullable=False),
        sa.Column("low_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("low_amount", app.db_types.ExactDecimal(), nullable=False),
        sa.Column("low_price", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("low_rank", sa.Float(), nullable=False),
        sa.Column("high_id", sa.BigInteger(), nullable=False),
        sa.Column("high_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("high_amount", app.db_types.ExactDecimal(), nullable=False),
        sa.Column("high_price", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("high_rank", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("asset", "account", "hour_start", name=op.f("pk_position_rollup")),
    )
    op.create_table(
        "rollup_watermark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folded_id", sa.BigInteger(), nullable=False),
        sa.Column("pending_id", sa.BigInteger(), nullable=True),
        sa.Column("pending_writers", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_watermark")),
    )


def downgrade():
    op.drop_table("rollup_watermark")
    op.drop_table("position_rollup")
