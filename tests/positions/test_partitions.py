"""The history partitioned by time on PostgreSQL: made by the migration, kept ahead by
the worker and `flask positions partitions`, pruned by retention and by the reads."""

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask_migrate import check, downgrade, upgrade
from sqlalchemy import event, func, select, text

from app.alerts.worker import run_pass
from app.db_types import utcnow
from app.extensions import db
from app.positions import csv_io, partitions, queries, retention, series, sparklines, value
from app.positions.ingest import record
from app.positions.models import Position
from app.positions.rollup import catch_up
from tests.conftest import (
    build_app,
    create_scratch_database,
    drop_scratch_database,
    postgres_admin_url,
)
from tests.positions.helpers import snap

PREVIOUS = "3f9b6d2e8a71"  # the revision before the history was partitioned
FIRST = datetime(2026, 6, 1, tzinfo=UTC)
# Hourly snapshots of BTC and ETH for two accounts, June to November 2026.
HISTORY = """
INSERT INTO position (account, asset, timestamp, amount, price, received_at)
SELECT account, asset, t, 1.5, 100, t
FROM generate_series(timestamptz '2026-06-01', timestamptz '2026-11-30 23:00', '1 hour') t,
     (VALUES ('BTC'), ('ETH')) assets (asset), (VALUES ('main'), ('hedge')) accounts (account)
"""
HISTORY_ROWS = (183 * 24) * 4
# One busy day of BTC, a snapshot a minute (at :30 s, beside the hourly ones).
BUSY_DAY = """
INSERT INTO position (account, asset, timestamp, amount, price, received_at)
SELECT account, 'BTC', t, 2, 100, t
FROM generate_series(timestamptz '2026-09-10 00:00:30', timestamptz '2026-09-10 23:59:30',
                     '1 minute') t, (VALUES ('main'), ('hedge')) accounts (account)
"""
LATEST = """
INSERT INTO latest_position (account, asset, timestamp, amount, price, updated_at)
SELECT account, asset, max(timestamp), 1.5, 100, now() FROM position GROUP BY account, asset
"""
DATA_MONTHS = {f"position_p2026_{month:02}" for month in range(6, 12)}


# The apps a test built, closed after it so no connection outlives its database.
_opened = []


@pytest.fixture
def scratch_url():
    admin_url = postgres_admin_url()
    url = create_scratch_database(admin_url)
    yield url
    while _opened:
        with _opened.pop().app_context():
            db.session.remove()
            db.engine.dispose()
    drop_scratch_database(admin_url, url)


def migrated(url, revision="head", **overrides):
    """An app on `url` with the migrations applied up to `revision`."""
    app = build_app(url, **overrides)
    _opened.append(app)
    with app.app_context():
        upgrade(revision=revision)
    return app


def run_sql(app, *statements):
    with app.app_context():
        for statement in statements:
            db.session.execute(text(statement))
        db.session.commit()


@pytest.fixture
def history(scratch_url):
    """A database holding six months of history when the migration partitioned it."""
    app = migrated(scratch_url, PREVIOUS)
    run_sql(app, HISTORY, BUSY_DAY, LATEST)
    migrated(scratch_url)
    return app


def names(app) -> list[str]:
    with app.app_context():
        return [p.name for p in partitions.list_partitions()]


def where_stored(app) -> dict[int, str]:
    """Each snapshot's id and the partition holding it."""
    with app.app_context():
        rows = db.session.execute(text("SELECT id, tableoid::regclass::text FROM position"))
        return dict(rows.all())


def month_names(start: datetime, end: datetime) -> list[str]:
    found, month = [], start
    while month <= end:
        found.append(partitions.partition_name(month, "month"))
        month = partitions.next_period(month, "month")
    return found


# --- the migration ----------------------------------------------------------


def test_migration_keeps_every_row_and_id_and_the_sequence_goes_on(scratch_url):
    app = migrated(scratch_url, PREVIOUS)
    run_sql(
        app,
        HISTORY,
        # An old import and a gap in the ids, as deletes leave.
        "INSERT INTO position (account, asset, timestamp, amount, price, received_at)"
        " VALUES ('main', 'BTC', '2019-03-04 05:06:07.123456+00', 0.000000001, NULL, now())",
        "DELETE FROM position WHERE id BETWEEN 100 AND 199",
    )
    with app.app_context():
        before = db.session.execute(text("SELECT * FROM position ORDER BY id")).all()

    migrated(scratch_url)

    with app.app_context():
        kind = db.session.execute(text("SELECT relkind FROM pg_class WHERE relname = 'position'"))
        assert kind.scalar() == "p"
        assert db.session.execute(text("SELECT * FROM position ORDER BY id")).all() == before
        result = record([snap(at=utcnow() - timedelta(minutes=1))])
        db.session.commit()
        assert result.inserted == 1
        newest = db.session.scalar(select(func.max(Position.id)))
        assert newest == max(row.id for row in before) + 1
    last = partitions.period_start(utcnow(), "month")
    for _ in range(3):
        last = partitions.next_period(last, "month")
    expected = month_names(datetime(2019, 3, 1, tzinfo=UTC), last)
    assert names(app) == ["position_before", *expected, "position_after"]
    stored = where_stored(app)
    assert stored[before[-1].id] == "position_p2019_03"
    assert stored[1] == "position_p2026_06"


def test_autogenerate_sees_no_change_in_a_partitioned_database(history):
    with history.app_context():
        check()  # raises when the models and the database differ


def test_downgrade_makes_one_table_again_with_every_row(history):
    with history.app_context():
        before = db.session.execute(text("SELECT * FROM position ORDER BY id")).all()
        db.session.commit()
        downgrade(revision=PREVIOUS)
        kind = db.session.execute(text("SELECT relkind FROM pg_class WHERE relname = 'position'"))
        assert kind.scalar() == "r"
        assert db.session.execute(text("SELECT * FROM position ORDER BY id")).all() == before
        tables = db.session.scalars(text("SELECT relname FROM pg_class WHERE relkind = 'r'"))
        assert not [name for name in tables if name.startswith("position_p")]
        record([snap(at=utcnow() - timedelta(minutes=1))])
        db.session.commit()
        assert db.session.scalar(select(func.max(Position.id))) == before[-1].id + 1


# --- creating ahead -----------------------------------------------------------


def test_worker_pass_creates_the_periods_ahead(scratch_url):
    app = migrated(scratch_url, POSITION_PARTITIONS_AHEAD=6)
    with app.app_context():
        run_pass("test-worker", interval=1, started_at=utcnow(), passes=1)
    month = partitions.period_start(utcnow(), "month")
    for _ in range(6):
        month = partitions.next_period(month, "month")
    assert partitions.partition_name(month, "month") in names(app)
    assert names(app)[-2] == partitions.partition_name(month, "month")
    assert names(app)[-1] == "position_after"


def test_worker_gives_up_on_a_locked_history_and_its_pass_goes_on(scratch_url, caplog):
    app = migrated(scratch_url, POSITION_PARTITIONS_AHEAD=6)
    listed = names(app)
    # Alembic's logging set-up replaced the root handlers, caplog's among them.
    logger = logging.getLogger("app.positions.partitions")
    logger.addHandler(caplog.handler)
    with app.app_context(), db.engine.connect() as reader:
        # A long read (an export, say) holds the table while the worker looks.
        reader.execute(text("SELECT count(*) FROM position"))
        started = time.monotonic()
        try:
            result = run_pass("test-worker", interval=1, started_at=utcnow(), passes=1)
        finally:
            logger.removeHandler(caplog.handler)
        waited = time.monotonic() - started
        reader.rollback()
    assert result.transitions == 0
    assert 1.5 < waited < 10
    assert names(app) == listed
    assert any("the table stayed locked" in r.getMessage() for r in caplog.records)


def test_prune_on_a_locked_history_says_so_and_deletes_nothing(history):
    with history.app_context(), db.engine.connect() as reader:
        before = db.session.scalar(select(func.count()).select_from(Position))
        db.session.commit()
        reader.execute(text("SELECT count(*) FROM position"))
        result = history.test_cli_runner().invoke(
            args=["positions", "prune", "--before", "2026-08-10T00:00:00Z", "--yes"]
        )
        reader.rollback()
        after = db.session.scalar(select(func.count()).select_from(Position))
    assert result.exit_code == 1
    assert "position stayed locked" in result.output
    assert "Traceback" not in result.output
    assert after == before


def test_weekly_periods_continue_after_the_months(scratch_url):
    app = migrated(scratch_url)
    with app.app_context():
        after = partitions.list_partitions()[-1]
        created = partitions.create_ahead(after.lower, ahead=1, interval="week")
        db.session.commit()
        last = partitions.list_partitions()[-2]
    monday = after.lower - timedelta(days=after.lower.weekday())
    # The week holding the first day not covered is cut from that day on.
    assert created == [
        partitions.partition_name(after.lower, "week"),
        partitions.partition_name(monday + timedelta(days=7), "week"),
    ]
    assert last.upper == monday + timedelta(days=14)


def test_partitions_command_creates_ahead_and_lists_sizes(history):
    result = history.test_cli_runner().invoke(args=["positions", "partitions", "--ahead", "5"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    listed = [line.split("\t") for line in lines[:-1]]
    assert [row[0] for row in listed] == names(history)
    june = next(row for row in listed if row[0] == "position_p2026_06")
    assert june[1:3] == ["2026-06-01 00:00", "2026-07-01 00:00"]
    assert re.fullmatch(r"~[0-9,]+ rows", june[3])
    assert listed[-2][3] == "~0 rows"  # created now
    # June's 30 days of 4 hourly series, counted by the migration's ANALYZE.
    assert int(june[3][1:-5].replace(",", "")) == 30 * 24 * 4
    assert re.fullmatch(r"[0-9]+ (kB|MB)", june[4])
    assert listed[0][:3] == ["position_before", "-infinity", "2026-06-01 00:00"]
    assert listed[-1][0] == "position_after" and listed[-1][2] == "infinity"
    assert lines[-1].startswith("Created position_p") and lines[-1].count("position_p") == 2

    again = history.test_cli_runner().invoke(args=["positions", "partitions", "--ahead", "5"])
    assert again.output.splitlines()[-1] == "Created none: all there."


def test_partitions_command_on_sqlite_says_there_is_one_table(runner):
    result = runner.invoke(args=["positions", "partitions"])

    assert result.exit_code == 0, result.output
    assert "one table" in result.output


# --- the catch-alls -------------------------------------------------------------


def test_snapshots_outside_the_periods_are_kept_and_move_into_a_new_period(history):
    with history.app_context():
        after = partitions.list_partitions()[-1]
        late = after.lower + timedelta(days=40, hours=3)
        # The worker stopped for months: the ingest's clock would allow these.
        run_sql(
            history,
            "INSERT INTO position (account, asset, timestamp, amount, price, received_at)"
            f" VALUES ('main', 'BTC', '{late.isoformat()}', 7, NULL, now()),"
            f" ('main', 'BTC', '{(late + timedelta(days=100)).isoformat()}', 8, NULL, now())",
        )
        result = record([snap(at=datetime(2018, 1, 1, tzinfo=UTC))])
        db.session.commit()
        assert result.inserted == 1
    stored = where_stored(history)
    late_ids = sorted(i for i, name in stored.items() if name == "position_after")
    assert len(late_ids) == 2
    assert list(stored.values()).count("position_before") == 1

    with history.app_context():
        created = partitions.create_ahead(late, ahead=0, interval="month")
        db.session.commit()

    stored = where_stored(history)
    assert created[-1] == partitions.partition_name(
        partitions.period_start(late, "month"), "month"
    )
    assert stored[late_ids[0]] == created[-1]
    assert stored[late_ids[1]] == "position_after"
    assert len(stored) == HISTORY_ROWS + 2880 + 3


def test_ingest_spreads_over_partitions_with_duplicates_and_conflicts(history):
    now = utcnow()
    batch = [
        snap(asset="SOL", at=datetime(2026, 7, 15, tzinfo=UTC)),
        snap(asset="SOL", at=datetime(2026, 10, 15, tzinfo=UTC)),
        snap(asset="SOL", at=now - timedelta(minutes=1)),
        snap(asset="SOL", at=datetime(2017, 5, 5, tzinfo=UTC)),
    ]
    with history.app_context():
        first = record(batch)
        db.session.commit()
        again = record(
            [
                *batch[:2],
                snap(asset="SOL", at=batch[2].timestamp, amount="9"),
                snap(asset="BTC", account="main", at=datetime(2026, 8, 1, 5, tzinfo=UTC)),
                snap(
                    asset="BTC",
                    account="main",
                    at=datetime(2026, 8, 1, 5, tzinfo=UTC) + timedelta(minutes=30),
                ),
            ]
        )
        db.session.commit()
        rows = db.session.execute(
            text(
                "SELECT timestamp, tableoid::regclass::text FROM position"
                " WHERE asset = 'SOL' ORDER BY timestamp"
            )
        ).all()
    assert first.inserted == 4
    assert (again.inserted, again.duplicates, len(again.conflicts)) == (1, 3, 1)
    assert [name for _, name in rows] == [
        "position_before",
        "position_p2026_07",
        "position_p2026_10",
        partitions.partition_name(partitions.period_start(now, "month"), "month"),
    ]


# --- retention -------------------------------------------------------------------


def test_prune_drops_whole_partitions_and_deletes_only_the_cut_ones_rows(history):
    with history.app_context():
        record([snap(at=datetime(2019, 1, 1, tzinfo=UTC))])
        db.session.commit()
        cut = datetime(2026, 8, 10, 12, tzinfo=UTC)
        counted = sum(count for _, _, count in retention.count_before(cut))
        deleted = []
        listener = _count_deleted(deleted)
        event.listen(db.engine, "after_cursor_execute", listener)
        try:
            pruned = retention.prune_before(cut, batch_size=500)
        finally:
            event.remove(db.engine, "after_cursor_execute", listener)
        left = db.session.scalar(select(func.count()).select_from(Position))
        oldest = db.session.scalar(select(func.min(Position.timestamp)))
    # June and July dropped whole; 9.5 days of August (4 series, hourly) deleted by rows.
    rows_by_delete = (9 * 24 + 12) * 4
    assert pruned == counted == 1 + (30 + 31) * 24 * 4 + rows_by_delete
    assert left == HISTORY_ROWS + 2880 - (pruned - 1)
    assert oldest == cut
    # Row by row: only the cut month's rows and the old one in position_before.
    assert sum(deleted) == rows_by_delete + 1
    listed = names(history)
    assert "position_p2026_06" not in listed and "position_p2026_07" not in listed
    assert listed[:2] == ["position_before", "position_p2026_08"]
    with history.app_context():
        first = partitions.list_partitions()[0]
        assert first.upper == datetime(2026, 8, 1, tzinfo=UTC)
        tables = set(db.session.scalars(text("SELECT relname FROM pg_class")))
        assert "position_p2026_06" not in tables
        # An old snapshot still finds a partition after the prune.
        assert record([snap(at=datetime(2026, 7, 2, tzinfo=UTC))]).inserted == 1
        db.session.commit()


def test_a_prune_stopped_after_its_detach_has_its_leftover_dropped_by_the_next(history):
    with history.app_context():
        cut = datetime(2026, 7, 1, tzinfo=UTC)
        june = datetime(2026, 6, 1, tzinfo=UTC)
        june_rows = sum(count for _, _, count in retention.count_before(cut)) - sum(
            count for _, _, count in retention.count_before(june)
        )
        # What a prune stopped between its commit and its drop leaves: June detached.
        assert partitions.detach_before(cut) == ["position_p2026_06"]
        db.session.commit()
        later = datetime(2026, 7, 2, tzinfo=UTC)
        pruned = retention.prune_before(later, batch_size=500)
        tables = set(db.session.scalars(text("SELECT relname FROM pg_class")))
    assert "position_p2026_06" not in tables
    # June's rows, dropped with their table, and the first day of July, row by row.
    assert pruned == june_rows + 24 * 4


def _count_deleted(found):
    def listener(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("DELETE FROM POSITION "):
            found.append(cursor.rowcount)

    return listener


# --- reads prune partitions --------------------------------------------------------


def statements_during(app, action) -> list[tuple[str, object]]:
    """The SELECTs reading `position` that `action` sent, with their parameters."""
    found = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and re.search(
            r"\bposition\b", statement
        ):
            found.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            action()
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    assert found, "no query read the history"
    return found


def partitions_read(app, statement, parameters) -> tuple[set[str], set[str]]:
    """The partitions in the statement's plan, and those its execution opened."""
    with app.app_context():
        known = set(names(app))
        with db.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            ).scalar()
    planned, executed = set(), set()
    nodes = [(json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") in known:
            planned.add(node["Relation Name"])
            if node.get("Actual Loops", 0) > 0:
                executed.add(node["Relation Name"])
    return planned, executed


def test_history_page_newest_first_reads_only_the_newest_month(history):
    def first_page():
        with history.app_context():
            queries.history_page("BTC", limit=100)

    # A day back from the newest snapshot holds 48 rows, eight days the page.
    statements = statements_during(history, first_page)
    planned, executed = partitions_read(history, *statements[-1])

    assert len(statements) == 2
    assert planned & DATA_MONTHS == {"position_p2026_11"}
    assert executed & DATA_MONTHS == {"position_p2026_11"}


def test_history_page_after_a_cursor_skips_newer_months(history):
    cursor = queries.Cursor(datetime(2026, 8, 15, tzinfo=UTC), 10**9)

    def later_page():
        with history.app_context():
            queries.history_page("BTC", cursor=cursor, limit=100)

    statements = statements_during(history, later_page)
    planned, executed = partitions_read(history, *statements[-1])

    assert planned & DATA_MONTHS == {"position_p2026_08"}
    assert executed & DATA_MONTHS == {"position_p2026_08"}


def unwindowed_pages(asset: str, limit: int) -> list[list[tuple]]:
    """Every page as one query over the whole history would give it."""
    rows = [tuple(row) for row in db.session.execute(queries.history_query(asset))]
    return [rows[i : i + limit] for i in range(0, len(rows), limit)]


def windowed_pages(asset: str, limit: int) -> list[list[tuple]]:
    pages, cursor = [], None
    while True:
        page = queries.history_page(asset, cursor=cursor, limit=limit)
        pages.append([tuple(row) for row in page.rows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 2, 100, 500])
def test_history_pages_read_in_windows_are_the_pages_of_the_whole_history(history, limit):
    with history.app_context():
        # A sparse series: years, months and minutes apart, across the windows' edges.
        moments = [
            datetime(2019, 3, 1, tzinfo=UTC),
            datetime(2026, 6, 2, tzinfo=UTC),
            datetime(2026, 9, 1, tzinfo=UTC),
            datetime(2026, 11, 29, 23, tzinfo=UTC),
            datetime(2026, 11, 30, 22, 59, tzinfo=UTC),
            datetime(2026, 11, 30, 23, tzinfo=UTC),
        ]
        record([snap(asset="XRP", at=at, amount=str(n)) for n, at in enumerate(moments)])
        db.session.commit()
        # ETH: six months of two hourly series, paged to the end (not one row at a time).
        for asset in ("XRP", "ETH") if limit >= 100 else ("XRP",):
            assert windowed_pages(asset, limit) == unwindowed_pages(asset, limit)
        assert len(windowed_pages("XRP", limit)[0]) == min(limit, len(moments))


SEP, SEP_OCT = {"position_p2026_09"}, {"position_p2026_09", "position_p2026_10"}


@pytest.mark.parametrize(
    ("start", "end", "max_points", "fold", "months", "downsampled"),
    [
        # Raw points: a day of hourly snapshots.
        (datetime(2026, 9, 2), datetime(2026, 9, 3), 2000, False, SEP, False),
        # Downsampled in the database: the busy day, in buckets under an hour.
        (datetime(2026, 9, 10, 1), datetime(2026, 9, 10, 7), 200, False, SEP, True),
        # Six weeks across two months: by the snapshots while the rollups are behind,
        (datetime(2026, 9, 15), datetime(2026, 10, 31), 2000, False, SEP_OCT, True),
        # and by the hourly rollups once they are current.
        (datetime(2026, 9, 15, 0, 30), datetime(2026, 10, 31), 2000, True, SEP_OCT, True),
    ],
)
def test_chart_series_reads_only_the_months_of_its_range(
    history, start, end, max_points, fold, months, downsampled
):
    start, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    document = {}
    if fold:
        with history.app_context():
            catch_up()

    def chart():
        with history.app_context():
            document.update(
                series.asset_series("BTC", start=start, end=end, max_points=max_points)
            )

    statements = statements_during(history, chart)
    assert document["point_count"] > 0
    assert document["downsampled"] == downsampled
    # Each read of snapshots by time; the rollups' lag check (ids above the watermark,
    # whatever their time) is not one.
    reads = [(sql, parameters) for sql, parameters in statements if "timestamp" in sql]
    assert len(reads) >= 2
    for statement, parameters in reads:
        planned, executed = partitions_read(history, statement, parameters)
        assert executed and executed <= months, statement
        # Pruned while planning too: planning every month cost more than the read
        # with years of them (bench/README.md, scale.py).
        assert planned & DATA_MONTHS <= months, statement


def test_overview_sparklines_read_only_the_last_days_month(history):
    def overview():
        with history.app_context():
            sparklines.sparklines(datetime(2026, 9, 20, 12, tzinfo=UTC))

    [(statement, parameters)] = statements_during(history, overview)
    _planned, executed = partitions_read(history, statement, parameters)

    assert executed == {"position_p2026_09"}


def test_value_over_time_plans_and_reads_only_its_range(history):
    """Every lookup plans and reads only the months of its moments: the grid's the
    range's, the first moment's a day back from it, the page's figures' (now, 1 h, 24 h
    and 30 days ago) a day back from the oldest. Every series reported in that day, so
    none is looked up without a bound."""
    now = datetime(2026, 9, 3, 12, tzinfo=UTC)

    def week():
        with history.app_context():
            value.value_over_time(now, "7d")

    first_moment, grid = statements_during(history, week)
    planned, executed = partitions_read(history, *grid)
    assert planned & DATA_MONTHS == {"position_p2026_08", "position_p2026_09"}
    assert executed & DATA_MONTHS == {"position_p2026_08", "position_p2026_09"}
    planned, executed = partitions_read(history, *first_moment)
    assert planned & DATA_MONTHS == executed & DATA_MONTHS == {"position_p2026_08"}

    def figures():
        with history.app_context():
            value.value_figures(now, "30d")

    [lookups] = statements_during(history, figures)
    planned, executed = partitions_read(history, *lookups)
    assert planned & DATA_MONTHS == {"position_p2026_08", "position_p2026_09"}
    assert executed & DATA_MONTHS == {"position_p2026_08", "position_p2026_09"}


def test_value_figures_find_a_series_new_in_the_range_without_planning_every_month(history):
    """A series that began inside the range has nothing before it: looked up without a
    bound, that scanned the asset's whole history (1.2 s at 100M, bench/README.md). Its
    lookup is held to the day before the range; only while its snapshot waits to be
    folded is it also read by id, as the charts read what waits."""
    now = datetime(2026, 9, 3, 12, tzinfo=UTC)
    with history.app_context():
        catch_up()
        record([snap(account="arb", at=datetime(2026, 9, 2, 8, tzinfo=UTC), amount="3")])
        db.session.commit()

    def figures():
        with history.app_context():
            report = value.value_figures(now, "30d")
            assert report.now["arb"] == Decimal(300)
            assert report.changes["arb"] == {"1h": 0, "24h": 0, "range": None}

    waiting = statements_during(history, figures)
    by_id = [s for s in waiting if "position.id >" in s[0]]
    assert len(by_id) == 1
    for statement, parameters in waiting:
        if statement not in by_id[0]:
            planned, _ = partitions_read(history, statement, parameters)
            assert planned & DATA_MONTHS <= {"position_p2026_08", "position_p2026_09"}
    with history.app_context():
        catch_up()
    for statement, parameters in statements_during(history, figures):
        planned, _ = partitions_read(history, statement, parameters)
        assert planned & DATA_MONTHS <= {"position_p2026_08", "position_p2026_09"}, statement


def test_export_of_a_range_reads_only_its_months(history):
    rows = []

    def export():
        with history.app_context():
            rows.extend(
                csv_io.export_rows(
                    asset="BTC",
                    start=datetime(2026, 9, 25, tzinfo=UTC),
                    end=datetime(2026, 10, 5, tzinfo=UTC),
                    page_size=100,
                )
            )

    statements = statements_during(history, export)
    assert len(rows) == 10 * 24 * 2
    assert len(statements) == 5
    for statement, parameters in statements:
        planned, executed = partitions_read(history, statement, parameters)
        assert planned <= {"position_p2026_09", "position_p2026_10"}, statement
        assert executed


def test_export_from_the_start_reads_the_oldest_month_first(history):
    def first_page():
        with history.app_context():
            next(csv_io.export_rows(asset="BTC", page_size=100))

    [(statement, parameters)] = statements_during(history, first_page)
    _planned, executed = partitions_read(history, statement, parameters)

    assert executed & DATA_MONTHS == {"position_p2026_06"}


def test_amounts_stay_exact_across_partitions(history):
    with history.app_context():
        at = datetime(2026, 7, 9, 0, 0, 1, tzinfo=UTC)
        record([snap(at=at, amount="0.123456789012345678901")])
        db.session.commit()
        stored = db.session.scalar(
            select(Position.amount).where(
                Position.timestamp == datetime(2026, 7, 9, 0, 0, 1, tzinfo=UTC),
                Position.asset == "BTC",
                Position.account == "main",
            )
        )
    assert stored == Decimal("0.123456789012345678901")
