"""Hourly rollups: folded in the background, read by the chart series for long ranges."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from app.db_types import format_decimal
from app.extensions import db
from app.positions import buckets, retention, rollup, series
from app.positions.models import (
    LatestPosition,
    Position,
    PositionDailyRollup,
    PositionRollup,
    PositionWeeklyRollup,
    RollupWatermark,
    notional,
)
from tests.positions.helpers import ONE, T0, snap, store, store_exact_ranking

HOUR = timedelta(hours=1)


def rollups(app, level=rollup.HOURLY) -> dict:
    """(account, asset, hour) -> (rows, first, last, low, high), each (timestamp, amount);
    of the days with `level` DAILY."""
    with app.app_context():
        found = {}
        for r in db.session.scalars(select(level.model)):
            found[r.account, r.asset, getattr(r, level.start)] = (
                r.rows,
                *(
                    (getattr(r, f"{role}_at"), format_decimal(getattr(r, f"{role}_amount")))
                    for role in rollup.ROLES
                ),
            )
        return found


def expected_rollups(app, floor=rollup.hour_floor) -> dict:
    """The same, computed the plain way from every stored snapshot."""
    with app.app_context():
        rows = db.session.execute(
            select(Position.account, Position.asset, Position.timestamp, Position.amount)
        ).all()
    groups = defaultdict(list)
    for account, asset, at, amount in rows:
        groups[account, asset, floor(at)].append((at, amount))
    expected = {}
    for key, members in groups.items():
        picks = (
            min(members),
            max(members),
            min(members, key=lambda m: (m[1], m[0])),
            min(members, key=lambda m: (m[1].copy_negate(), m[0])),
        )
        expected[key] = (len(members), *((at, format_decimal(x)) for at, x in picks))
    return expected


def folded_through(app) -> int:
    with app.app_context():
        return rollup.folded_id()


def catch_up(app, **options) -> int:
    with app.app_context():
        return rollup.catch_up(**options)


def test_catch_up_keeps_each_hours_first_last_lowest_and_highest_exactly(any_app):
    store(
        any_app,
        [
            snap(minutes=0, amount="2.50"),
            snap(minutes=10, amount="0.10000000000000000001"),
            snap(minutes=20, amount="0.1"),
            snap(minutes=30, amount="9"),
            snap(minutes=40, amount="9.0"),  # ties with 9: the earlier one is the highest
            snap(minutes=50, amount="3"),
            snap(minutes=60, amount="-1"),  # the next hour
            snap(account="hedge", minutes=5, amount="7"),
        ],
    )
    assert catch_up(any_app) == 8
    got = rollups(any_app)
    assert got[("main", "BTC", T0)] == (
        6,
        (T0, "2.50"),
        (T0 + timedelta(minutes=50), "3"),
        (T0 + timedelta(minutes=20), "0.1"),
        (T0 + timedelta(minutes=30), "9"),
    )
    assert got[("main", "BTC", T0 + HOUR)][0] == 1
    assert got == expected_rollups(any_app)
    with any_app.app_context():
        assert rollup.folded_id() == db.session.scalar(select(func.max(Position.id)))


def test_catch_up_again_changes_nothing(any_app):
    store(any_app, [snap(minutes=m, amount=str(m % 7)) for m in range(0, 300, 13)])
    catch_up(any_app)
    before = rollups(any_app)
    assert catch_up(any_app) == 0
    assert rollups(any_app) == before == expected_rollups(any_app)


def test_late_and_backfilled_snapshots_are_folded_into_their_hours(any_app):
    store(any_app, [snap(minutes=m, amount="5") for m in range(10, 120, 10)])
    catch_up(any_app)
    store(
        any_app,
        [
            snap(minutes=5, amount="-3"),  # late, in a folded hour: new first and lowest
            snap(minutes=-30, amount="1"),  # backfilled, in an hour with no rollup yet
            snap(account="hedge", minutes=70, amount="2"),
        ],
    )
    assert catch_up(any_app) == 3
    got = rollups(any_app)
    assert got == expected_rollups(any_app)
    assert got[("main", "BTC", T0)][:2] == (6, (T0 + timedelta(minutes=5), "-3"))
    assert got[("main", "BTC", T0 - HOUR)][0] == 1


def test_catch_up_stops_at_max_rows_in_chunks_and_resumes_in_id_order(any_app):
    store(any_app, [snap(minutes=7 * m, amount=str(m % 5)) for m in range(25)])
    with any_app.app_context():
        ids = list(db.session.scalars(select(Position.id).order_by(Position.id)))
    assert catch_up(any_app, max_rows=10, chunk_rows=3) == 10
    assert folded_through(any_app) == ids[9]
    assert sum(count for count, *_ in rollups(any_app).values()) == 10
    assert catch_up(any_app, chunk_rows=4) == 15
    assert folded_through(any_app) == ids[-1]
    assert rollups(any_app) == expected_rollups(any_app)


def test_postgresql_folds_no_id_whose_transaction_is_still_open(any_app):
    with any_app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite commits one writer at a time: ids commit in order")
        with db.engine.connect() as other:
            # The open transaction draws its id first, another commits after it.
            other.execute(
                insert(Position).values(
                    account="main", asset="BTC", timestamp=T0, amount=Decimal("-9")
                )
            )
            store(any_app, [snap(minutes=1, amount="4")])
            rollup.catch_up()
            assert rollup.folded_id() < db.session.scalar(select(func.max(Position.id)))
            other.commit()
        rollup.catch_up()
    assert rollups(any_app) == expected_rollups(any_app)
    assert rollups(any_app)[("main", "BTC", T0)][3] == (T0, "-9")


def series_points(app, **options):
    with app.app_context():
        got = series.asset_series("BTC", **options)
    points = sorted(
        (entry["account"], round(point[0] * 10**6), point[1], point[2])
        for entry in got["series"]
        for point in entry["points"]
    )
    return got, points


def raw_rows(app, start=None, end=None) -> list:
    with app.app_context():
        query = select(
            Position.account, Position.timestamp, Position.amount, Position.price
        ).where(Position.asset == "BTC")
        if start is not None:
            query = query.where(Position.timestamp >= start)
        if end is not None:
            query = query.where(Position.timestamp < end)
        return db.session.execute(query).all()


def bucket_floor(app, max_points, start=None, end=None):
    """Week buckets when each of the cap's buckets spans half a week or more, else days
    when half a day or more, else hours."""
    rows = raw_rows(app, start, end)
    accounts = len({row.account for row in rows})
    bucket_count = max(1, max_points // (4 * accounts))
    moments = [row.timestamp for row in rows]
    span = 2 * (max(moments) - min(moments))
    if span >= bucket_count * timedelta(weeks=1):
        return rollup.week_floor
    if span >= bucket_count * timedelta(days=1):
        return rollup.day_floor
    return rollup.hour_floor


def hour_aligned_m4(app, width_seconds, start=None, end=None, floor=rollup.hour_floor):
    """(account, epoch micros, amount, notional) of the M4 of raw snapshots in buckets
    starting on the hour (or on the period `floor` gives) of the first one."""
    rows = raw_rows(app, start, end)
    origin = buckets.to_micros(floor(min(row.timestamp for row in rows)))
    groups = defaultdict(list)
    for account, at, amount, price in rows:
        micros = buckets.to_micros(at)
        index = (micros - origin) // (width_seconds * 10**6)
        groups[account, index].append((micros, amount, notional(amount, price)))
    keep = set()
    for (account, _), members in groups.items():
        for t, amount, value in (
            min(members),
            max(members),
            min(members, key=lambda m: (m[1], m[0])),
            min(members, key=lambda m: (m[1].copy_negate(), m[0])),
        ):
            text = None if value is None else format_decimal(value)
            keep.add((account, t, format_decimal(amount), text))
    return sorted(keep)


PERIOD_SECONDS = {rollup.hour_floor: 3600, rollup.day_floor: 86400, rollup.week_floor: 604800}


def series_matches_m4(
    app, rows, order_seed, folded_share, max_points, edges, *, unpriced, tail=Decimal(0)
):
    """Store (account, minutes from T0, quarters) rows in random order, fold part of them,
    and check the chart of the range `edges` (minutes from T0, or None) against M4 over
    the raw snapshots in buckets of whole periods; every `unpriced`-th minute without a
    price, `tail` times (minutes % 3) added to each amount."""
    clear(app)
    # Stored in random order, so late and backfilled rows sit above the watermark.
    random.Random(order_seed).shuffle(rows)
    snapshots = [
        snap(
            account=account,
            minutes=minutes,
            amount=str(Decimal(quarters) / 4 + tail * (minutes % 3)),
            price=None if minutes % unpriced == 0 else f"{minutes}.0{quarters + 3}",
        )
        for account, minutes, quarters in rows
    ]
    store(app, snapshots[: len(rows) // 2])
    catch_up(app, max_rows=int(folded_share * len(rows) // 2), chunk_rows=7)
    store(app, snapshots[len(rows) // 2 :])
    catch_up(app, max_rows=int(folded_share * len(rows) // 4), chunk_rows=5)
    start, end = (None if e is None else T0 + timedelta(minutes=e) for e in edges)
    got, points = series_points(app, start=start, end=end, max_points=max_points)
    assert got["point_count"] == len(points) <= max_points
    if got["downsampled"] and got["bucket_seconds"] >= 3600:
        floor = bucket_floor(app, max_points, start, end)
        width = int(got["bucket_seconds"])
        assert width % PERIOD_SECONDS[floor] == 0
        assert points == hour_aligned_m4(app, width, start, end, floor)


def clear(app):
    with app.app_context():
        for model in (
            Position,
            LatestPosition,
            PositionRollup,
            PositionDailyRollup,
            PositionWeeklyRollup,
            RollupWatermark,
        ):
            db.session.execute(db.delete(model))
        db.session.commit()


@settings(
    max_examples=25,
    # Shrinking re-runs the database work many times; the failing example is shown anyway.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            # Minutes over two days on a 5-minute grid: rows often sit on an hour edge.
            st.integers(min_value=0, max_value=48 * 12).map(lambda step: step * 5),
            st.integers(min_value=-3, max_value=3),
        ),
        min_size=16,
        max_size=80,
        unique_by=lambda row: (row[0], row[1]),
    ),
    order_seed=st.integers(0, 2**16),
    folded_share=st.floats(0, 1),
    max_points=st.sampled_from([12, 24, 48]),
    edges=st.sampled_from([(None, None), (7, None), (None, 2000), (95, 2500), (60, 1800)]),
)
def test_series_from_rollups_and_raw_rows_equals_m4_over_raw_rows(
    any_app, rows, order_seed, folded_share, max_points, edges
):
    # Every 15th without a price: its point has no notional.
    series_matches_m4(any_app, rows, order_seed, folded_share, max_points, edges, unpriced=15)


def test_long_range_is_downsampled_in_whole_hours_within_the_cap(any_app):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 37) % 101 - 50))
            for account in ("main", "hedge")
            for m in range(0, 60 * 60, 5)
        ],
    )
    catch_up(any_app)
    got, points = series_points(any_app, max_points=40)
    # 2 accounts: 40 // 8 = 5 buckets over 60 hours -> 12 hours each.
    assert got["downsampled"] is True and got["bucket_seconds"] == 12 * 3600
    assert points == hour_aligned_m4(any_app, 12 * 3600)
    assert got["point_count"] <= 40


@pytest.mark.parametrize(
    ("minutes", "bucket_seconds"),
    [
        # 2 accounts, 40 points: 5 buckets. 200 minutes: 40-minute buckets become the
        # 4 whole hours the rows touch, each read from its hourly rollup.
        (200, 3600),
        # 145 minutes: 29-minute buckets, under half an hour, stay as planned.
        (145, 145 * 60 / 5),
    ],
)
def test_buckets_of_half_an_hour_or_more_are_whole_hours(any_app, minutes, bucket_seconds):
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=str((m * 37) % 101 - 50))
            for account in ("main", "hedge")
            for m in range(0, minutes + 1)
        ],
    )
    catch_up(any_app)
    got, points = series_points(any_app, max_points=40)
    assert got["downsampled"] is True
    assert got["bucket_seconds"] == pytest.approx(bucket_seconds)
    assert got["point_count"] <= 40
    if bucket_seconds == 3600:
        assert points == hour_aligned_m4(any_app, 3600)


def test_hour_buckets_rank_amounts_exactly_past_double_precision_and_scale(any_app):
    with any_app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite ranks extremes across hours by their REAL value (aligned_rows)")
    # Two a hour for ten hours; 2 accounts, 16 points: 2 buckets of 5 hours, one a half.
    store_exact_ranking(any_app, timedelta(minutes=30))
    catch_up(any_app)
    got, points = series_points(any_app, max_points=16)
    assert got["bucket_seconds"] == 5 * 3600
    assert points == hour_aligned_m4(any_app, 5 * 3600)
    main = {(t, amount) for account, t, amount, _ in points if account == "main"}
    assert (buckets.to_micros(T0 + timedelta(minutes=60)), ONE) in main
    assert (buckets.to_micros(T0 + timedelta(minutes=360)), "-" + ONE) in main


def test_long_range_far_behind_the_rollups_is_downsampled_from_snapshots(any_app, monkeypatch):
    store(any_app, [snap(minutes=m, amount=str(m % 11)) for m in range(0, 60 * 60, 7)])
    monkeypatch.setattr(rollup, "FAR_BEHIND_ROWS", 100)
    got, _ = series_points(any_app, max_points=20)
    # 5 buckets over the 3,598 minutes the rows span, not whole hours.
    assert got["bucket_seconds"] == pytest.approx(3_598 * 60 / 5)
    catch_up(any_app)
    got, points = series_points(any_app, max_points=20)
    assert got["bucket_seconds"] == 12 * 3600
    assert points == hour_aligned_m4(any_app, 12 * 3600)


def test_far_behind_counts_what_waits_only_past_the_ids_drawn(any_app, monkeypatch):
    monkeypatch.setattr(rollup, "FAR_BEHIND_ROWS", 3)
    store(any_app, [snap(minutes=m) for m in range(2)])
    with any_app.app_context():
        # Three ids drawn since the watermark: no more than three can wait.
        assert not rollup.far_behind(0, 3)
        # Fifty drawn (failed batches leave gaps), two wait: counted.
        assert not rollup.far_behind(0, 50)
    store(any_app, [snap(minutes=m) for m in range(2, 6)])
    with any_app.app_context():
        assert rollup.far_behind(0, 50)
        assert not rollup.far_behind(3, 6)


def test_prune_through_an_hour_keeps_the_series_exact(any_app):
    store(
        any_app,
        [snap(minutes=m, amount=str((m * 13) % 23 - 11)) for m in range(0, 6 * 60, 5)],
    )
    catch_up(any_app)
    before = T0 + timedelta(hours=1, minutes=32)
    with any_app.app_context():
        retention.prune_before(before)
    got = rollups(any_app)
    assert got == expected_rollups(any_app)
    assert min(hour for _, _, hour in got) == T0 + HOUR
    assert got[("main", "BTC", T0 + HOUR)][1] == (T0 + timedelta(hours=1, minutes=35), "5")
    result, points = series_points(any_app, max_points=8)
    assert result["bucket_seconds"] == 3 * 3600
    assert points == hour_aligned_m4(any_app, 3 * 3600)


def test_prune_on_an_hour_edge_drops_the_hours_before_it(any_app):
    store(any_app, [snap(minutes=m) for m in range(0, 3 * 60, 30)])
    catch_up(any_app)
    with any_app.app_context():
        retention.prune_before(T0 + HOUR)
    assert sorted(hour for _, _, hour in rollups(any_app)) == [T0 + HOUR, T0 + 2 * HOUR]
    assert rollups(any_app) == expected_rollups(any_app)


def test_alert_worker_pass_brings_rollups_current(any_app):
    store(any_app, [snap(minutes=m) for m in range(0, 200, 10)])
    result = any_app.test_cli_runner().invoke(
        args=["alerts", "run", "--passes", "1", "--interval", "0.1"]
    )
    assert result.exit_code == 0, result.output
    assert rollups(any_app) == expected_rollups(any_app)
    with any_app.app_context():
        assert rollup.unfolded_count() == 0


def test_seed_and_rollup_commands_leave_nothing_unfolded(any_app):
    runner = any_app.test_cli_runner()
    result = runner.invoke(args="seed demo --assets BTC --accounts main --days 1 --interval 1h")
    assert result.exit_code == 0, result.output
    assert len(rollups(any_app)) >= 24
    assert rollups(any_app) == expected_rollups(any_app)
    store(any_app, [snap(at=datetime(2020, 1, 1, tzinfo=UTC))])
    result = runner.invoke(args=["positions", "rollup"])
    assert result.exit_code == 0, result.output
    assert "Folded 1 snapshots" in result.output
    assert rollups(any_app) == expected_rollups(any_app)


def test_first_run_seed_leaves_nothing_unfolded(any_app):
    result = any_app.test_cli_runner().invoke(args="seed first-run --days 1")
    assert result.exit_code == 0, result.output
    with any_app.app_context():
        assert rollup.unfolded_count() == 0
    assert len(rollups(any_app)) >= 6 * 24
    assert rollups(any_app) == expected_rollups(any_app)
