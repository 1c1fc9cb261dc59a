"""history partitioned by month on PostgreSQL

Revision ID: 6a2f0c4b9d17
Revises: 3f9b6d2e8a71
Create Date: 2026-12-07 02:40:00.000000

On PostgreSQL `position` becomes a table partitioned by range of `timestamp`: one
partition per UTC month from the oldest snapshot's month to three months ahead, with
`position_before` (MINVALUE up to the first month) and `position_after` (the last
month's end up to MAXVALUE) catching anything else (app.positions.partitions). The
primary key becomes (id, timestamp), as a partitioned table's keys must hold the
partition key; ids and the id sequence are kept. SQLite keeps one table: nothing here.

The upgrade copies every snapshot in one transaction, then builds the keys and
indexes, holding `position` locked meanwhile: every read and write of the history
waits (past gunicorn's timeout on a big table), so stop ingest and the workers for
about 3 s per million snapshots. Measured on 2 shared cores, PostgreSQL 15 with its
default settings: 1 million snapshots (0.3 GB) in 4.6 s, 5 million (1.4 GB) in
14.3 s, each the wall time of `flask db upgrade` from the revision before, with
snapshots every 5 minutes of 100 series over 1-6 months.
"""

from datetime import UTC, datetime, timedelta

from alembic import op
from sqlalchemy import text

# revision identifiers, used by Alembic.
revision = "6a2f0c4b9d17"
down_revision = "3f9b6d2e8a71"
branch_labels = None
depends_on = None

# Every snapshot, from the table set aside (its name's suffix appended).
COPY_FROM = (
    '"position" ("id", "account", "asset", "timestamp", "amount", "price", "received_at")'
    ' SELECT "id", "account", "asset", "timestamp", "amount", "price", "received_at"'
    " FROM position_"
)
COLUMN_TYPES = """
    "id" BIGINT NOT NULL DEFAULT nextval('position_id_seq'::regclass),
    "account" VARCHAR(64) NOT NULL,
    "asset" VARCHAR(64) NOT NULL,
    "timestamp" TIMESTAMP WITH TIME ZONE NOT NULL,
    "amount" NUMERIC NOT NULL,
    "price" NUMERIC,
    "received_at" TIMESTAMP WITH TIME ZONE NOT NULL
"""
INDEXES = ("pk_position", "uq_position_account_asset_timestamp", "ix_position_asset")
UNIQUE = 'CONSTRAINT uq_position_account_asset_timestamp UNIQUE ("account", "asset", "timestamp")'
HISTORY_INDEX = (
    'CREATE INDEX ix_position_asset ON "position"'
    ' ("asset", "timestamp", "id", "account", "amount", "price")'
)
MONTHS_AHEAD = 3


def _month(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _range(lower: datetime | None, upper: datetime | None) -> str:
    low = "MINVALUE" if lower is None else f"'{lower.isoformat()}'"
    high = "MAXVALUE" if upper is None else f"'{upper.isoformat()}'"
    return f"FOR VALUES FROM ({low}) TO ({high})"


def _set_aside(table: str, suffix: str) -> None:
    """Rename a table and its key and index names, so the new table can take them."""
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_{suffix}"')
    for index in INDEXES:
        op.execute(f'ALTER INDEX "{index}" RENAME TO "{index}_{suffix}"')
    op.execute("ALTER SEQUENCE position_id_seq OWNED BY NONE")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside("position", "unpartitioned")
    op.execute(f'CREATE TABLE "position" ({COLUMN_TYPES}) PARTITION BY RANGE ("timestamp")')
    oldest, newest = (
        op.get_bind()
        .execute(text('SELECT min("timestamp"), max("timestamp") FROM position_unpartitioned'))
        .one()
    )
    now = datetime.now(UTC)
    month = _month(oldest or now)
    last = _month(max(newest or now, now))
    for _ in range(MONTHS_AHEAD):
        last = _next_month(last)
    op.execute(f'CREATE TABLE position_before PARTITION OF "position" {_range(None, month)}')
    while month <= last:
        upper = _next_month(month)
        name = f"position_p{month:%Y_%m}"
        op.execute(f'CREATE TABLE "{name}" PARTITION OF "position" {_range(month, upper)}')
        month = upper
    op.execute(f'CREATE TABLE position_after PARTITION OF "position" {_range(month, None)}')
    # Keys and indexes are built once the rows are in: faster than row by row.
    op.execute(f"INSERT INTO {COPY_FROM}unpartitioned")
    op.execute(
        'ALTER TABLE "position" ADD CONSTRAINT pk_position PRIMARY KEY ("id", "timestamp"),'
        f" ADD {UNIQUE}"
    )
    op.execute(HISTORY_INDEX)
    op.execute('ALTER SEQUENCE position_id_seq OWNED BY "position"."id"')
    op.execute("DROP TABLE position_unpartitioned")
    # Autovacuum analyses the partitions in time, but never a partitioned parent.
    op.execute('ANALYZE "position"')


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside("position", "partitioned")
    op.execute(
        f'CREATE TABLE "position" ({COLUMN_TYPES},'
        f' CONSTRAINT pk_position PRIMARY KEY ("id"), {UNIQUE})'
    )
    op.execute(f"INSERT INTO {COPY_FROM}partitioned")
    op.execute(HISTORY_INDEX)
    op.execute('ALTER SEQUENCE position_id_seq OWNED BY "position"."id"')
    op.execute("DROP TABLE position_partitioned")
    op.execute('ANALYZE "position"')
