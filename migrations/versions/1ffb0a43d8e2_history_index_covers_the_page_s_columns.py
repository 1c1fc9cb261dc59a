"""history index covers the page's columns

Revision ID: 1ffb0a43d8e2
Revises: 530a9c8cc53c
Create Date: 2026-11-25 11:13:07.338542

A history page reads 100 snapshots of one asset, newest first. With the account,
amount and price in the index as well, it never reads the snapshot rows themselves.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "1ffb0a43d8e2"
down_revision = "530a9c8cc53c"
branch_labels = None
depends_on = None

KEYSET = ["asset", "timestamp", "id"]
SHOWN = ["account", "amount", "price"]


def upgrade():
    with op.batch_alter_table("position", schema=None) as batch_op:
        batch_op.drop_index("ix_position_asset")
        batch_op.create_index("ix_position_asset", KEYSET + SHOWN, unique=False)


def downgrade():
    with op.batch_alter_table("position", schema=None) as batch_op:
        batch_op.drop_index("ix_position_asset")
        batch_op.create_index("ix_position_asset", KEYSET, unique=False)
