"""reconciliations: pairs of accounts compared, their assets and break history

Revision ID: d08a9a76b8f2
Revises: ae83e5c457e8
Create Date: 2026-12-06 20:18:57.518607

"""

import sqlalchemy as sa
from alembic import op

import app.db_types

# revision identifiers, used by Alembic.
revision = "d08a9a76b8f2"
down_revision = "ae83e5c457e8"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "reconciliation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("left_account", sa.String(length=64), nullable=False),
        sa.Column("left_label", sa.String(length=32), nullable=False),
        sa.Column("right_account", sa.String(length=64), nullable=False),
        sa.Column("right_label", sa.String(length=32), nullable=False),
        sa.Column("abs_tolerance", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("rel_tolerance_percent", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        sa.Column("left_max_age_seconds", sa.Integer(), nullable=False),
        sa.Column("right_max_age_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rule.id"],
            name=op.f("fk_reconciliation_rule_id_alert_rule"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation")),
        sa.UniqueConstraint("name", name=op.f("uq_reconciliation_name")),
        sa.UniqueConstraint("rule_id", name=op.f("uq_reconciliation_rule_id")),
    )
    op.create_table(
        "recon_asset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reconciliation_id", sa.Integer(), nullable=False),
        sa.Column("left_asset", sa.String(length=64), nullable=False),
        sa.Column("right_asset", sa.String(length=64), nullable=False),
        sa.Column("multiplier", app.db_types.ExactDecimal(), nullable=False),
        sa.Column("abs_tolerance", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("rel_tolerance_percent", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("as_of", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_amount", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("left_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("right_amount", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("right_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("difference", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("evaluated_at", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["reconciliation.id"],
            name=op.f("fk_recon_asset_reconciliation_id_reconciliation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_asset")),
        sa.UniqueConstraint(
            "reconciliation_id",
            "left_asset",
            name=op.f("uq_recon_asset_reconciliation_id_left_asset"),
        ),
        sa.UniqueConstraint(
            "reconciliation_id",
            "right_asset",
            name=op.f("uq_recon_asset_reconciliation_id_right_asset"),
        ),
    )
    op.create_table(
        "recon_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recon_asset_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("at", app.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("as_of", app.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_amount", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("right_amount", app.db_types.ExactDecimal(), nullable=True),
        sa.Column("difference", app.db_types.ExactDecimal(), nullable=True),
        sa.ForeignKeyConstraint(
            ["recon_asset_id"],
            ["recon_asset.id"],
            name=op.f("fk_recon_transition_recon_asset_id_recon_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_transition")),
    )
    with op.batch_alter_table("recon_transition", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recon_transition_recon_asset_id"),
            ["recon_asset_id", "at"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("recon_transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_transition_recon_asset_id"))

    op.drop_table("recon_transition")
    op.drop_table("recon_asset")
    op.drop_table("reconciliation")
