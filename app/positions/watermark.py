"""The rollups' watermark: how far the snapshots are folded, and how far they safely may be.

One watermark for the hourly, daily and weekly rollups: all are folded from the same
chunk in the same transaction (app.positions.rollup).
"""

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.positions.models import Position, RollupWatermark

WATERMARK_ID = 1
# NULL until the first id is drawn.
ID_SEQUENCE_LAST_VALUE = text("SELECT pg_sequence_last_value('position_id_seq')")


def is_sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def folded_id() -> int:
    """The watermark: every snapshot with an id up to it is in the rollups."""
    mark = db.session.get(RollupWatermark, WATERMARK_ID)
    return 0 if mark is None else mark.folded_id


def newest_drawn_id() -> int:
    """The newest snapshot id handed out, committed or not, read without the history.

    On PostgreSQL the ids' sequence (every write draws from it): max(id) would visit
    every partition, whose planning and locks grow with the age of the history. On
    SQLite max(id), one seek in one table.
    """
    if is_sqlite():
        return db.session.execute(select(func.max(Position.id))).scalar() or 0
    return db.session.execute(ID_SEQUENCE_LAST_VALUE).scalar() or 0


def lock_watermark() -> RollupWatermark:
    """Start the write transaction by taking the watermark row.

    A write first: SQLite then holds its write lock for the whole fold (a read that
    later upgrades could fail on a stale snapshot), and two folders take turns.
    """
    table = RollupWatermark.__table__
    values = {"id": WATERMARK_ID, "folded_id": 0}
    insert = (sqlite if is_sqlite() else postgresql).insert(table).values(values)
    db.session.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
    db.session.execute(
        update(RollupWatermark)
        .where(RollupWatermark.id == WATERMARK_ID)
        .values(folded_id=RollupWatermark.folded_id)
    )
    mark = db.session.get(RollupWatermark, WATERMARK_ID, populate_existing=True)
    assert mark is not None
    return mark


# Transactions (virtual ids) holding a write lock on the snapshot table, ours aside.
WRITERS = text(
    "SELECT coalesce(string_agg(DISTINCT virtualtransaction, ','), '') FROM pg_locks"
    " WHERE relation = 'position'::regclass AND mode = 'RowExclusiveLock'"
    " AND pid <> pg_backend_pid()"
)
STILL_RUNNING = text(
    "SELECT count(*) FROM pg_locks WHERE virtualtransaction = ANY(string_to_array(:ids, ','))"
)


def safe_bound(mark: RollupWatermark) -> int:
    """The highest id whose snapshot, and every one below it, is committed or never will be.

    SQLite commits one writer at a time, so ids commit in order. PostgreSQL may commit
    id 101 before id 100. A transaction takes its write lock on the table before it
    draws an id, so any id below the newest one seen now belongs to a transaction
    holding that lock now: the newest id is folded once those transactions have ended.
    """
    if is_sqlite():
        return db.session.execute(select(func.max(Position.id))).scalar() or 0
    bound = mark.folded_id
    if mark.pending_id is not None:
        writers = mark.pending_writers or ""
        if not writers or not db.session.execute(STILL_RUNNING, {"ids": writers}).scalar():
            bound = max(bound, mark.pending_id)
            mark.pending_writers = ""
    # A new candidate once the last one is folded through. The newest id first, then
    # the writers: whoever drew an id below it still holds the lock when they are read.
    # The newest drawn, from the sequence: max(id) would probe every partition each pass.
    if mark.pending_id is None or mark.folded_id >= mark.pending_id:
        newest = newest_drawn_id()
        if newest > mark.folded_id:
            mark.pending_id = newest
            mark.pending_writers = db.session.execute(WRITERS).scalar()
            if not mark.pending_writers:
                bound = newest  # nobody is writing: nothing below it can still appear
    return bound
