"""notification idempotency key and per-alert order index

Revision ID: 9354019ab560
Revises: 1ffb0a43d8e2
Create Date: 2026-12-06 14:58:05.381818

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "9354019ab560"
down_revision = "1ffb0a43d8e2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
    # Rows queued before this revision: a key from their id, unique within the install.
    op.execute("UPDATE notification SET idempotency_key = 'tm-' || id")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.alter_column(
            "idempotency_key", existing_type=sa.String(length=64), nullable=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_alert_id"),
            ["alert_id", "channel_id", "status"],
            unique=False,
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_notification_idempotency_key"), ["idempotency_key"]
        )


def downgrade():
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_notification_idempotency_key"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_notification_alert_id"))
        batch_op.drop_column("idempotency_key")
