"""Daily rollups: folded beside the hours, read by the chart when its buckets span days."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from flask_migrate import downgrade, upgrade
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from app.extensions import db
from app.positions import retention, rollup, series
from app.positions.models import PositionDailyRollup
from tests.conftest import build_app, create_scratch_database, drop_scratch_database
from tests.conftest import postgres_admin_url as admin_url
from tests.positions.helpers import T0, snap, store
from tests.positions.test_rollup import (
    bucket_floor,
    catch_up,
    expected_rollups,
    hour_aligned_m4,
    rollups,
    series_matches_m4,
    series_points,
)

DAY = timedelta(days=1)
# The migration before the daily level, and the one that adds it.
BEFORE_DAILY = "6a2f0c4b9d17"


def days(app) -> dict:
    return rollups(app, rollup.DAILY)


def expected_days(app) -> dict:
    return expected_rollups(app, rollup.day_floor)


def test_catch_up_keeps_each_days_first_last_lowest_and_highest_exactly(any_app):
    store(
        any_app,
        [
            snap(minutes=-13 * 60, amount="4"),  # the day before
            snap(minutes=0, amount="2.50"),
            snap(minutes=70, amount="0.10000000000000000001"),
            snap(minutes=130, amount="0.1"),
            snap(minutes=200, amount="9"),
            snap(minutes=400, amount="9.0"),  # ties with 9, hours later: 9 stays the highest
            snap(minutes=11 * 60 + 59, amount="3"),  # 23:59, the day's last
            snap(minutes=12 * 60, amount="-1"),  # midnight: the next day
            snap(account="hedge", minutes=5, amount="7"),
        ],
    )
    assert catch_up(any_app) == 9
    got = days(any_app)
    day = rollup.day_floor(T0)
    assert got[("main", "BTC", day)] == (
        6,
        (T0, "2.50"),
        (T0 + timedelta(minutes=11 * 60 + 59), "3"),
        (T0 + timedelta(minutes=130), "0.1"),
        (T0 + timedelta(minutes=200), "9"),
    )
    assert got[("main", "BTC", day + DAY)][0] == 1
    assert got[("main", "BTC", day - DAY)][0] == 1
    assert got[("hedge", "BTC", day)][0] == 1
    assert got == expected_days(any_app)


def test_late_and_backfilled_snapshots_are_folded_into_their_days(any_app):
    store(any_app, [snap(minutes=m, amount="5") for m in range(0, 3 * 24 * 60, 170)])
    catch_up(any_app)
    store(
        any_app,
        [
            snap(minutes=-5, amount="-3"),  # late, in a folded day: its new first and lowest
            snap(minutes=-3 * 24 * 60, amount="1"),  # backfilled, into a day with no rollup
            snap(minutes=24 * 60 + 1, amount="8"),  # a folded day's new highest
            snap(account="hedge", minutes=70, amount="2"),
        ],
    )
    assert catch_up(any_app) == 4
    got = days(any_app)
    assert got == expected_days(any_app)
    day = rollup.day_floor(T0)
    assert got[("main", "BTC", day)][1] == (T0 - timedelta(minutes=5), "-3")
    assert got[("main", "BTC", day + DAY)][4] == (T0 + timedelta(minutes=24 * 60 + 1), "8")
    assert got[("main", "BTC", day - 3 * DAY)][0] == 1
    assert rollups(any_app) == expected_rollups(any_app)


def test_catch_up_in_small_chunks_folds_days_as_in_one(any_app):
    store(any_app, [snap(minutes=97 * m, amount=str(m % 5 - 2)) for m in range(60)])
    assert catch_up(any_app, max_rows=20, chunk_rows=3) == 20
    assert sum(count for count, *_ in days(any_app).values()) == 20
    catch_up(any_app, chunk_rows=4)
    assert days(any_app) == expected_days(any_app)


@pytest.mark.parametrize(
    "before",
    [
        T0 + timedelta(hours=30, minutes=32),  # through an hour of the second day
        T0 + timedelta(hours=31),  # on an hour edge, mid-day
        T0 + timedelta(hours=12),  # on a day edge
    ],
)
def test_prune_keeps_the_days_in_line_with_the_snapshots_left(any_app, before):
    store(
        any_app, [snap(minutes=m, amount=str((m * 13) % 23 - 11)) for m in range(0, 72 * 60, 25)]
    )
    catch_up(any_app)
    with any_app.app_context():
        retention.prune_before(before)
    got = days(any_app)
    assert got == expected_days(any_app)
    assert min(day for _, _, day in got) == rollup.day_floor(before)
    assert rollups(any_app) == expected_rollups(any_app)


def test_deleting_a_range_of_one_series_refolds_its_days_only(any_app):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 7) % 19 - 9))
            for account in ("main", "hedge")
            for m in range(0, 72 * 60, 35)
        ],
    )
    catch_up(any_app)
    hedge_days = {key: value for key, value in days(any_app).items() if key[0] == "hedge"}
    with any_app.app_context():
        found = retention.select_series("main", "BTC", T0 + timedelta(hours=5), T0 + 2 * DAY)
        assert retention.delete_series_range(found) > 0
        db.session.commit()
    got = days(any_app)
    assert got == expected_days(any_app)
    assert {key: value for key, value in got.items() if key[0] == "hedge"} == hedge_days


def test_whole_history_chart_reads_day_buckets_equal_to_m4_over_the_snapshots(any_app):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 37) % 101 - 50))
            for account in ("main", "hedge")
            for m in range(0, 40 * 24 * 60, 47)
        ],
    )
    catch_up(any_app)
    got, points = series_points(any_app, max_points=96)
    # 2 accounts: 96 // 8 = 12 buckets over 40 days from noon (under half a week each, so
    # not weeks), 41 UTC days -> 4 days each.
    assert got["bucket_seconds"] == 4 * 86400
    assert points == hour_aligned_m4(any_app, 4 * 86400, floor=rollup.day_floor)
    assert got["point_count"] <= 96


@settings(
    max_examples=25,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            # Over twelve days on a 35-minute grid: rows on hour and day edges too.
            st.integers(min_value=0, max_value=12 * 24 * 60 // 35).map(lambda step: step * 35),
            st.integers(min_value=-3, max_value=3),
        ),
        min_size=16,
        max_size=90,
        unique_by=lambda row: (row[0], row[1]),
    ),
    order_seed=st.integers(0, 2**16),
    folded_share=st.floats(0, 1),
    max_points=st.sampled_from([12, 24, 40]),
    # Minutes from T0 (12:00 UTC): partial days and hours at both ends, or none.
    edges=st.sampled_from(
        [(None, None), (7, None), (None, 9000), (12 * 60, 9 * 24 * 60), (95, 11 * 24 * 60 + 17)]
    ),
)
def test_series_from_days_hours_and_raw_rows_equals_m4_over_raw_rows(
    any_app, rows, order_seed, folded_share, max_points, edges
):
    # Exact: the digits past double precision decide nothing here, but must survive.
    tail = Decimal("1E-30")
    series_matches_m4(
        any_app, rows, order_seed, folded_share, max_points, edges, unpriced=7, tail=tail
    )


@pytest.fixture(params=["sqlite", "postgres"])
def scratch_app(request, tmp_path):
    if request.param == "sqlite":
        yield build_app(f"sqlite:///{tmp_path / 'daily.sqlite3'}")
        return
    if admin_url() is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = create_scratch_database(admin_url())
    yield build_app(url)
    drop_scratch_database(admin_url(), url)


def test_migration_builds_the_days_of_a_database_with_hours_only(scratch_app):
    with scratch_app.app_context():
        upgrade()
    store(
        scratch_app,
        [
            snap(account=account, minutes=m, amount=str((m * 11) % 17 - 8) + ".50")
            for account in ("main", "hedge")
            for m in range(-600, 3 * 24 * 60, 41)
        ]
        + [snap(minutes=3 * 24 * 60 + 1, amount="0.10000000000000000001")],
    )
    catch_up(scratch_app)
    folded = days(scratch_app)
    assert len(folded) >= 8
    with scratch_app.app_context():
        db.session.remove()
        downgrade(revision=BEFORE_DAILY)
        upgrade()
        # The days come back from the hours alone, as the fold made them.
        assert db.session.scalar(select(db.func.count()).select_from(PositionDailyRollup))
    assert days(scratch_app) == folded == expected_days(scratch_app)
    with scratch_app.app_context():
        db.session.remove()
        db.engine.dispose()


def statements_during(app, action) -> list[str]:
    found = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        found.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            action()
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    return found


def test_chart_looks_for_unfolded_snapshots_only_while_some_wait(any_app):
    store(any_app, [snap(minutes=m, amount=str(m % 9)) for m in range(0, 10 * 24 * 60, 30)])
    catch_up(any_app)

    def by_id_reads() -> int:
        def chart():
            series.asset_series("BTC", max_points=40)

        return sum("position.id >" in statement for statement in statements_during(any_app, chart))

    assert by_id_reads() == 0
    store(any_app, [snap(minutes=-7, amount="-4")])
    # One, the read of what waits. No lag check counts them: fewer ids were drawn since
    # the watermark than a backlog would take.
    assert by_id_reads() == 1
    got, points = series_points(any_app, max_points=40)
    assert points == hour_aligned_m4(
        any_app, int(got["bucket_seconds"]), floor=bucket_floor(any_app, 40)
    )
    assert (T0 - timedelta(minutes=7)).timestamp() in {
        point[0] for entry in got["series"] for point in entry["points"]
    }
    catch_up(any_app)
    assert by_id_reads() == 0


def test_whole_history_chart_with_every_snapshot_folded_reads_no_snapshot(any_app):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 7) % 13 - 6))
            for account in ("main", "hedge")
            for m in range(0, 30 * 24 * 60, 53)
        ],
    )
    catch_up(any_app)

    def chart():
        series.asset_series("BTC", max_points=40)

    # (On SQLite, max(id) tells whether one waits: a seek, not a read of the history.)
    history = re.compile(r"\bposition\.(asset|timestamp)\b")
    reads = [s for s in statements_during(any_app, chart) if history.search(s)]
    assert reads == []
    got, points = series_points(any_app, max_points=40)
    assert got["bucket_seconds"] % 86400 == 0
    assert points == hour_aligned_m4(
        any_app, int(got["bucket_seconds"]), floor=bucket_floor(any_app, 40)
    )
    # One snapshot waiting: it alone is read from the snapshots, by id; the size, the
    # accounts and the extent still come from the days.
    store(any_app, [snap(account="hedge", minutes=-1, amount="99")])
    reads = [s for s in statements_during(any_app, chart) if history.search(s)]
    assert len(reads) == 1 and "position.id >" in reads[0]
    got, points = series_points(any_app, max_points=40)
    assert points == hour_aligned_m4(
        any_app, int(got["bucket_seconds"]), floor=bucket_floor(any_app, 40)
    )
    # A new account's snapshot from before all the others, waiting too: it widens the
    # extent and brings its account.
    store(any_app, [snap(account="arb", minutes=-3 * 24 * 60, amount="5")])
    got, points = series_points(any_app, max_points=40)
    assert [entry["account"] for entry in got["series"]] == ["arb", "hedge", "main"]
    assert points == hour_aligned_m4(
        any_app, int(got["bucket_seconds"]), floor=bucket_floor(any_app, 40)
    )
