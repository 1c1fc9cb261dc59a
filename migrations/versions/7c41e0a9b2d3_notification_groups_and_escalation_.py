"""notification groups per channel and escalation policies

Revision ID: 7c41e0a9b2d3
Revises: 5b7e2c9d4f10
Create Date: 2026-12-06 23:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "7c41e0a9b2d3"
down_revision = "5b7e2c9d4f10"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "escalation_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_policy")),
        sa.UniqueConstraint("name", name=op.f("uq_escalation_policy_name")),
    )
    op.create_table(
        "escalation_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("wait_seconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["escalation_policy.id"],
            name=op.f("fk_escalation_step_policy_id_escalation_policy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_step")),
        sa.UniqueConstraint(
            "policy_id", "position", name=op.f("uq_escalation_step_policy_id_position")
        ),
    )
    op.create_table(
        "escalation_step_channel",
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channel.id"],
            name=op.f("fk_escalation_step_channel_channel_id_channel"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["escalation_step.id"],
            name=op.f("fk_escalation_step_channel_step_id_escalation_step"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_id", "channel_id", name=op.f("pk_escalation_step_channel")),
    )
    op.create_table(
        "notification_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("changed_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_flush_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channel.id"],
            name=op.f("fk_notification_group_channel_id_channel"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_group")),
        sa.UniqueConstraint(
            "channel_id", "key", name=op.f("uq_notification_group_channel_id_key")
        ),
    )
    with op.batch_alter_table("notification_group", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_group_next_flush_at"), ["next_flush_at"], unique=False
        )
    op.create_table(
        "notification_group_alert",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fired_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notified_state", sa.String(length=16), nullable=True),
        sa.Column("changed_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
            name=op.f("fk_notification_group_alert_alert_id_alert"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["notification_group.id"],
            name=op.f("fk_notification_group_alert_group_id_notification_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "alert_id", name=op.f("pk_notification_group_alert")),
    )
    with op.batch_alter_table("notification_group_alert", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_group_alert_alert_id"), ["alert_id"], unique=False
        )

    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("group_by", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("group_wait_seconds", sa.Integer(), server_default="30", nullable=False)
        )
        batch_op.add_column(
            sa.Column("group_interval_seconds", sa.Integer(), server_default="300", nullable=False)
        )
        batch_op.add_column(
            sa.Column("group_repeat_seconds", sa.Integer(), server_default="3600", nullable=False)
        )
    with op.batch_alter_table("alert_rule", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_policy_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_alert_rule_escalation_policy_id_escalation_policy"),
            "escalation_policy",
            ["escalation_policy_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_step", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_next_at", app.db_types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_alert_escalation_next_at"), ["escalation_next_at"], unique=False
        )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notification_group_id_notification_group"),
            "notification_group",
            ["group_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(
            batch_op.f("ix_notification_group_id"), ["group_id", "status"], unique=False
        )


def downgrade():
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_group_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_notification_group_id_notification_group"), type_="foreignkey"
        )
        batch_op.drop_column("group_id")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_escalation_next_at"))
        batch_op.drop_column("escalation_next_at")
        batch_op.drop_column("escalation_step")
    with op.batch_alter_table("alert_rule", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_alert_rule_escalation_policy_id_escalation_policy"),
            type_="foreignkey",
        )
        batch_op.drop_column("escalation_policy_id")
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.drop_column("group_repeat_seconds")
        batch_op.drop_column("group_interval_seconds")
        batch_op.drop_column("group_wait_seconds")
        batch_op.drop_column("group_by")
    with op.batch_alter_table("notification_group_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_group_alert_alert_id"))
    op.drop_table("notification_group_alert")
    with op.batch_alter_table("notification_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_group_next_flush_at"))
    op.drop_table("notification_group")
    op.drop_table("escalation_step_channel")
    op.drop_table("escalation_step")
    op.drop_table("escalation_policy")
