"""login counters replace login failure rows

Revision ID: c3a1d5e7f902
Revises: 9354019ab560
Create Date: 2026-12-06 15:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "c3a1d5e7f902"
down_revision = "9354019ab560"
branch_labels = None
depends_on = None


def upgrade():
    # Counts in progress are not carried over: a lockout window is minutes long.
    op.create_table(
        "login_counter",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_started_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_counter")),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failure_username"))
        batch_op.drop_index(batch_op.f("ix_login_failure_ip_address"))
    op.drop_table("login_failure")


def downgrade():
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("failed_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_failure_ip_address"), ["ip_address", "failed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_login_failure_username"), ["username", "failed_at"], unique=False
        )
    op.drop_table("login_counter")
