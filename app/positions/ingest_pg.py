"""Ingest on PostgreSQL: a batch goes into the history by COPY.

Called by ingest.record() only, inside the caller's transaction, with the batch already
checked and without keys repeated: the rules (duplicates, conflicts, the latest row
never moving backwards) are the same as on SQLite, only the round trips differ.

A batch of new keys, the usual one, is COPYed straight into `position`. When a key is
stored already (a resend, a conflict), that COPY fails on the unique key and is rolled
back to a savepoint, and the batch goes the careful way: COPY into a temporary table,
then one statement that inserts the new keys and tells duplicates from conflicts.
"""

import contextlib
from datetime import datetime
from operator import attrgetter

from sqlalchemy import exc

from app.extensions import db

# ON COMMIT DELETE ROWS, and created (IF NOT EXISTS) in every transaction that ingests:
# - not ON COMMIT DROP: that creates and drops a table per batch, writing and deleting
#   catalog rows (pg_class, pg_attribute, pg_type) at every ingest, which bloats the
#   catalogs under sustained load, for no speed gained (bench/README.md, ingest);
# - not once per connection: behind PgBouncer in transaction pooling each transaction
#   may run on another server connection, and a rolled-back transaction takes its
#   CREATE with it. IF NOT EXISTS finds the table where it already is, so this holds
#   on a plain connection, behind PgBouncer and after a rollback alike.
CREATE_BATCH_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS ingest_batch (
    ord integer NOT NULL,
    account varchar(64) NOT NULL,
    asset varchar(64) NOT NULL,
    timestamp timestamptz NOT NULL,
    amount numeric NOT NULL,
    price numeric
) ON COMMIT DELETE ROWS
"""
COPY_BATCH = "COPY pg_temp.ingest_batch (ord, account, asset, timestamp, amount, price) FROM STDIN"
COPY_NEW = "COPY position (account, asset, timestamp, amount, price, received_at) FROM STDIN"

# The latest rows of the series a COPY_NEW filled, the newest snapshot of each given,
# taken in the order STORE_BATCH takes them: two batches never wait on each other
# crosswise here either.
MOVE_LATEST = """
INSERT INTO latest_position AS latest (account, asset, timestamp, amount, price, updated_at)
SELECT account, asset, timestamp, amount, price, %(now)s
FROM unnest(%(accounts)s::varchar[], %(assets)s::varchar[], %(times)s::timestamptz[],
            %(amounts)s::numeric[], %(prices)s::numeric[])
     AS newest (account, asset, timestamp, amount, price)
ORDER BY account, asset
ON CONFLICT (account, asset) DO UPDATE SET
    timestamp = excluded.timestamp,
    amount = excluded.amount,
    price = excluded.price,
    updated_at = excluded.updated_at
WHERE excluded.timestamp > latest.timestamp
"""

# One statement: insert the new snapshots, move each series' latest row forward to its
# newest new snapshot (never backwards: a late, older one leaves it), and answer for
# every row that was not inserted whether it equals the stored one (NULL when the
# stored one is not visible yet). Rows inserted are not listed, so a batch of new
# snapshots gets an empty answer. The stored row is read by a subquery per skipped row,
# always an index lookup: as a join, the plan psycopg prepares after a few batches
# scanned the whole table, each batch slower than the one before. The rows go in by
# key: two batches holding the same keys in different orders would otherwise each
# wait for a key the other inserted, a deadlock that PostgreSQL ends by failing one.
# Their ids are drawn in that order too (the column default, after the sort), so the
# snapshots of one moment list by account and asset, as on SQLite; COLLATE "C" sorts
# by code point, as Python does there, whatever the database's collation.
STORE_BATCH = """
WITH inserted AS (
    INSERT INTO position (account, asset, timestamp, amount, price, received_at)
    SELECT account, asset, timestamp, amount, price, %(now)s
    FROM pg_temp.ingest_batch
    ORDER BY account COLLATE "C", asset COLLATE "C", timestamp
    ON CONFLICT (account, asset, timestamp) DO NOTHING
    RETURNING account, asset, timestamp, amount, price
), moved AS (
    INSERT INTO latest_position AS latest
        (account, asset, timestamp, amount, price, updated_at)
    SELECT DISTINCT ON (account, asset) account, asset, timestamp, amount, price, %(now)s
    FROM inserted
    ORDER BY account, asset, timestamp DESC
    ON CONFLICT (account, asset) DO UPDATE SET
        timestamp = excluded.timestamp,
        amount = excluded.amount,
        price = excluded.price,
        updated_at = excluded.updated_at
    WHERE excluded.timestamp > latest.timestamp
)
SELECT b.ord, (SELECT p.amount = b.amount AND p.price IS NOT DISTINCT FROM b.price
               FROM position AS p
               WHERE p.account = b.account AND p.asset = b.asset AND p.timestamp = b.timestamp)
FROM pg_temp.ingest_batch AS b
WHERE (SELECT count(*) FROM inserted) < %(rows)s  -- else every row was new: no search
AND NOT EXISTS (
    SELECT FROM inserted AS i
    WHERE i.account = b.account AND i.asset = b.asset AND i.timestamp = b.timestamp
)
"""

# A key another transaction inserted while STORE_BATCH ran is skipped by ON CONFLICT
# but not visible in that statement's snapshot; a new statement sees it committed.
COMPARE_STORED = """
SELECT b.ord, (SELECT p.amount = b.amount AND p.price IS NOT DISTINCT FROM b.price
               FROM position AS p
               WHERE p.account = b.account AND p.asset = b.asset AND p.timestamp = b.timestamp)
FROM pg_temp.ingest_batch AS b
WHERE b.ord = ANY(%(ords)s)
"""


def store_batch(rows: list, now: datetime) -> dict[int, bool]:
    """Insert the snapshots `rows` whose keys are new and update the latest rows.

    Return, for each row (by index) that was not inserted, whether it equals the
    stored snapshot of its key: True for a duplicate, False for a conflict.
    """
    connection = db.session.connection()
    # By key, as STORE_BATCH inserts: two batches never wait on each other crosswise,
    # and ids, drawn as rows go in, list one moment's snapshots by account and asset.
    by_key = sorted(rows, key=attrgetter("account", "asset", "timestamp"))
    if _copy_new(by_key, now):
        _move_latest(connection, by_key, now)
        return {}
    return _store_checked(connection, rows, now)


def _copy_new(by_key: list, now: datetime) -> bool:
    """COPY the rows into the history; False, and nothing written, if a key is stored.

    COPY writes a batch in about a third of the time the staging table and INSERT ...
    ON CONFLICT take (rows go in by the page, without a speculative insertion each;
    bench/README.md), so the usual batch of new keys pays for no check at all: the
    unique key refuses a batch that holds a stored key, and a savepoint takes back
    what that COPY wrote.
    """
    try:
        with db.session.begin_nested():
            # The session sets the savepoint when it hands out its connection.
            connection = db.session.connection()
            driver = connection.connection.driver_connection
            with (
                _as_sqlalchemy_error(connection, COPY_NEW),
                driver.cursor() as cursor,
                cursor.copy(COPY_NEW) as copy,
            ):
                for s in by_key:
                    copy.write_row((s.account, s.asset, s.timestamp, s.amount, s.price, now))
    except exc.IntegrityError:
        return False
    return True


def _move_latest(connection, by_key: list, now: datetime) -> None:
    """Move each series' latest row forward to its newest snapshot of the batch."""
    newest = {}
    for s in by_key:  # by time within a series: the last one of each is its newest
        newest[(s.account, s.asset)] = s
    connection.exec_driver_sql(
        MOVE_LATEST,
        {
            "now": now,
            "accounts": [s.account for s in newest.values()],
            "assets": [s.asset for s in newest.values()],
            "times": [s.timestamp for s in newest.values()],
            "amounts": [s.amount for s in newest.values()],
            "prices": [s.price for s in newest.values()],
        },
    )


def _store_checked(connection, rows: list, now: datetime) -> dict[int, bool]:
    """Store the batch through the temporary table, telling what was stored already."""
    connection.exec_driver_sql(CREATE_BATCH_TABLE)
    driver = connection.connection.driver_connection
    with (
        _as_sqlalchemy_error(connection, COPY_BATCH),
        driver.cursor() as cursor,
        cursor.copy(COPY_BATCH) as copy,
    ):
        for index, s in enumerate(rows):
            copy.write_row((index, s.account, s.asset, s.timestamp, s.amount, s.price))
    answer = connection.exec_driver_sql(STORE_BATCH, {"now": now, "rows": len(rows)})
    skipped = {index: same for index, same in answer}
    unseen = [index for index, same in skipped.items() if same is None]
    if unseen:
        seen = connection.exec_driver_sql(COMPARE_STORED, {"ords": unseen})
        skipped.update((index, same) for index, same in seen)
    # A key still unseen was deleted meanwhile: not ours to store, reported as before.
    return {index: bool(same) for index, same in skipped.items()}


@contextlib.contextmanager
def _as_sqlalchemy_error(connection, statement: str):
    """Raise a driver error as SQLAlchemy would, so a lost server is a 503, not a 500.

    COPY runs on the driver's own cursor, beside SQLAlchemy's error handling; this puts
    it back: the error class the app's handlers know, and a dead connection dropped
    from the pool instead of handed to the next request.
    """
    dialect = connection.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as error:
        raw = connection.connection.dbapi_connection
        lost = dialect.is_disconnect(error, raw, None)
        if lost:
            connection.invalidate(error)
        raise exc.DBAPIError.instance(
            statement,
            None,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error
