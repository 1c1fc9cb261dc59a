"""Weekly rollups: folded beside the hours and days, read by the chart when its buckets
span weeks."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask_migrate import downgrade, upgrade
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.extensions import db
from app.positions import retention, rollup
from app.positions.models import PositionWeeklyRollup
from tests.positions.helpers import T0, snap, store
from tests.positions.test_rollup import (
    catch_up,
    expected_rollups,
    hour_aligned_m4,
    rollups,
    series_matches_m4,
    series_points,
)
from tests.positions.test_rollup_daily import days, expected_days, scratch_app

WEEK = timedelta(weeks=1)
# T0 is a Sunday noon: its week began on Monday 2026-02-23, the next one begins at midnight.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
# The migration before the weekly level.
BEFORE_WEEKLY = "94c23e224d4c"

__all__ = ["scratch_app"]  # a fixture, shared with the daily tests


def weeks(app) -> dict:
    return rollups(app, rollup.WEEKLY)


def expected_weeks(app) -> dict:
    return expected_rollups(app, rollup.week_floor)


@pytest.mark.parametrize(
    ("moment", "monday"),
    [
        (datetime(2026, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2026, 2, 23, tzinfo=UTC)),
        (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        (datetime(2026, 3, 4, 13, 5, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        (datetime(1970, 1, 1, tzinfo=UTC), datetime(1969, 12, 29, tzinfo=UTC)),
        (datetime(2027, 1, 1, tzinfo=UTC), datetime(2026, 12, 28, tzinfo=UTC)),
    ],
)
def test_a_week_begins_on_monday_at_midnight_utc(moment, monday):
    assert rollup.week_floor(moment) == monday


def test_catch_up_keeps_each_weeks_first_last_lowest_and_highest_exactly(any_app):
    store(
        any_app,
        [
            snap(minutes=-6 * 24 * 60, amount="4"),  # Monday noon: the week's first
            snap(minutes=0, amount="2.50"),
            snap(minutes=70, amount="0.10000000000000000001"),
            snap(minutes=130, amount="0.1"),  # the week's lowest
            snap(minutes=200, amount="9"),
            snap(minutes=400, amount="9.0"),  # ties with 9, later: 9 stays the highest
            snap(minutes=11 * 60 + 59, amount="3"),  # Sunday 23:59, the week's last
            snap(minutes=12 * 60, amount="-1"),  # Monday midnight: the next week
            snap(account="hedge", minutes=5, amount="7"),
        ],
    )
    assert catch_up(any_app) == 9
    got = weeks(any_app)
    week = rollup.week_floor(T0)
    assert got[("main", "BTC", week)] == (
        7,
        (T0 - timedelta(days=6), "4"),
        (T0 + timedelta(minutes=11 * 60 + 59), "3"),
        (T0 + timedelta(minutes=130), "0.1"),
        (T0 + timedelta(minutes=200), "9"),
    )
    assert got[("main", "BTC", MONDAY)][0] == 1
    assert got[("hedge", "BTC", week)][0] == 1
    assert got == expected_weeks(any_app)


def test_late_backfilled_and_chunked_snapshots_are_folded_into_their_weeks(any_app):
    store(any_app, [snap(minutes=m, amount=str(m % 5 - 2)) for m in range(0, 20 * 24 * 60, 97)])
    assert catch_up(any_app, max_rows=100, chunk_rows=7) == 100
    catch_up(any_app, chunk_rows=13)
    store(
        any_app,
        [
            snap(minutes=-5, amount="-30"),  # late, in a folded week: its new lowest
            snap(minutes=-40 * 24 * 60, amount="1"),  # backfilled, into a week with no rollup
            snap(minutes=8 * 24 * 60 + 1, amount="80"),  # a folded week's new highest
        ],
    )
    assert catch_up(any_app) == 3
    got = weeks(any_app)
    assert got == expected_weeks(any_app)
    assert got[("main", "BTC", rollup.week_floor(T0))][3] == (T0 - timedelta(minutes=5), "-30")
    assert got[("main", "BTC", rollup.week_floor(T0 - 40 * timedelta(days=1)))][0] == 1


@pytest.mark.parametrize(
    "before",
    [
        MONDAY + timedelta(days=2, hours=6, minutes=32),  # through an hour, mid-week
        MONDAY + timedelta(days=3),  # on a day edge, mid-week
        MONDAY + WEEK,  # on a week edge
    ],
)
def test_prune_keeps_the_weeks_in_line_with_the_snapshots_left(any_app, before):
    store(
        any_app,
        [snap(minutes=m, amount=str((m * 13) % 23 - 11)) for m in range(0, 21 * 24 * 60, 55)],
    )
    catch_up(any_app)
    with any_app.app_context():
        retention.prune_before(before)
    got = weeks(any_app)
    assert got == expected_weeks(any_app)
    assert min(week for _, _, week in got) == rollup.week_floor(before)
    assert days(any_app) == expected_days(any_app)


def test_deleting_a_range_of_one_series_refolds_its_weeks_only(any_app):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 7) % 19 - 9))
            for account in ("main", "hedge")
            for m in range(0, 20 * 24 * 60, 65)
        ],
    )
    catch_up(any_app)
    hedge_weeks = {key: value for key, value in weeks(any_app).items() if key[0] == "hedge"}
    with any_app.app_context():
        found = retention.select_series("main", "BTC", MONDAY + timedelta(hours=5), MONDAY + WEEK)
        assert retention.delete_series_range(found) > 0
        db.session.commit()
    got = weeks(any_app)
    assert got == expected_weeks(any_app)
    assert got[("main", "BTC", MONDAY)][0] > 0  # what is left of the week before the range
    assert {key: value for key, value in got.items() if key[0] == "hedge"} == hedge_weeks


def test_whole_history_chart_reads_week_buckets_equal_to_m4_over_the_snapshots(any_app):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 37) % 101 - 50))
            for account in ("main", "hedge")
            for m in range(0, 120 * 24 * 60, 301)
        ],
    )
    catch_up(any_app)
    got, points = series_points(any_app, max_points=40)
    # 2 accounts: 40 // 8 = 5 buckets over 120 days from a Sunday noon, 19 ISO weeks
    # (the first one a day long) -> 4 weeks each.
    assert got["bucket_seconds"] == 4 * 7 * 86400
    assert points == hour_aligned_m4(any_app, 4 * 7 * 86400, floor=rollup.week_floor)
    assert got["point_count"] <= 40


@settings(
    max_examples=25,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            # Over ten weeks on a 173-minute grid: rows on hour, day and week edges too.
            st.integers(min_value=0, max_value=70 * 24 * 60 // 173).map(lambda k: k * 173),
            st.integers(min_value=-3, max_value=3),
        ),
        min_size=16,
        max_size=90,
        unique_by=lambda row: (row[0], row[1]),
    ),
    order_seed=st.integers(0, 2**16),
    folded_share=st.floats(0, 1),
    max_points=st.sampled_from([8, 16, 24]),
    # Minutes from T0 (Sunday 12:00 UTC): partial weeks, days and hours at both ends.
    edges=st.sampled_from(
        [(None, None), (7, None), (None, 50 * 24 * 60 + 17), (12 * 60, 63 * 24 * 60 + 12 * 60)]
    ),
)
def test_series_from_weeks_days_hours_and_raw_rows_equals_m4_over_raw_rows(
    any_app, rows, order_seed, folded_share, max_points, edges
):
    # Exact: the digits past double precision decide nothing here, but must survive.
    tail = Decimal("1E-30")
    series_matches_m4(
        any_app, rows, order_seed, folded_share, max_points, edges, unpriced=7, tail=tail
    )


def test_migration_builds_the_weeks_of_a_database_with_days_only(scratch_app):
    with scratch_app.app_context():
        upgrade()
    store(
        scratch_app,
        [
            snap(account=account, minutes=m, amount=str((m * 11) % 17 - 8) + ".50")
            for account in ("main", "hedge")
            for m in range(-9 * 24 * 60, 15 * 24 * 60, 173)
        ]
        + [snap(minutes=12 * 60, amount="0.10000000000000000001")],  # Monday midnight
    )
    catch_up(scratch_app)
    folded = weeks(scratch_app)
    assert len(folded) >= 8
    with scratch_app.app_context():
        db.session.remove()
        downgrade(revision=BEFORE_WEEKLY)
        upgrade()
        # The weeks come back from the days alone, as the fold made them.
        assert db.session.scalar(select(db.func.count()).select_from(PositionWeeklyRollup))
    assert weeks(scratch_app) == folded == expected_weeks(scratch_app)
    with scratch_app.app_context():
        db.session.remove()
        db.engine.dispose()
