"""daily digest: users' address and digest settings, one delivery per user and day

Revision ID: 5b7e2c9d4f10
Revises: d08a9a76b8f2
Create Date: 2026-12-06 23:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "5b7e2c9d4f10"
down_revision = "d08a9a76b8f2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(
            sa.Column("digest_enabled", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("digest_at", sa.Time(), server_default="08:00:00", nullable=False)
        )

    op.create_table(
        "digest_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_digest_delivery_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_delivery")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_digest_delivery_idempotency_key")),
        # Once a day per user, whichever worker gets there first.
        sa.UniqueConstraint(
            "user_id", "local_date", name=op.f("uq_digest_delivery_user_id_local_date")
        ),
    )
    with op.batch_alter_table("digest_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_digest_delivery_status"), ["status", "next_attempt_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("digest_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digest_delivery_status"))

    op.drop_table("digest_delivery")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("digest_at")
        batch_op.drop_column("digest_enabled")
        batch_op.drop_column("email")
