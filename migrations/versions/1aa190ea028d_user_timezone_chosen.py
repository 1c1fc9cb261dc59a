"""user timezone chosen

Revision ID: 1aa190ea028d
Revises: b4fbd5be1b39
Create Date: 2026-11-24 23:56:01.602845

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "1aa190ea028d"
down_revision = "b4fbd5be1b39"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone_chosen", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Before this column only the account page could set a zone other than the
    # default, so such a zone was chosen and the browser must not replace it.
    user = sa.table("user", sa.column("timezone", sa.String), sa.column("timezone_chosen"))
    op.execute(user.update().where(user.c.timezone != "UTC").values(timezone_chosen=sa.true()))


def downgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("timezone_chosen")
