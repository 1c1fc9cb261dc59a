"""ingest.record: the one write path."""

import multiprocessing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app import create_app
from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import ImplausibleTimestamp, Snapshot, record
from app.positions.models import Position
from config import TestingConfig
from tests.conftest import build_app
from tests.positions.helpers import T0, latest, snap, store


def stored(app):
    with app.app_context():
        return (
            db.session.execute(db.select(Position).order_by(Position.account, Position.timestamp))
            .scalars()
            .all()
        )


def test_new_snapshots_are_inserted_and_counted(any_app):
    result = store(any_app, [snap(minutes=i) for i in range(3)])
    assert (result.inserted, result.duplicates, result.conflicts) == (3, 0, [])
    assert result.changed_series == {("main", "BTC")}
    assert len(stored(any_app)) == 3


def test_resending_a_snapshot_counts_a_duplicate_and_stores_one_row(any_app):
    store(any_app, [snap(minutes=0), snap(minutes=1)])
    result = store(any_app, [snap(minutes=0), snap(minutes=1), snap(minutes=2)])
    assert (result.inserted, result.duplicates, result.conflicts) == (1, 2, [])
    assert len(stored(any_app)) == 3


def test_same_snapshot_twice_in_one_batch_is_one_row(any_app):
    result = store(any_app, [snap(), snap()])
    assert (result.inserted, result.duplicates) == (1, 1)
    assert len(stored(any_app)) == 1


def test_equal_decimal_written_differently_is_a_duplicate(any_app):
    store(any_app, [snap(amount="1.50")])
    result = store(any_app, [snap(amount="1.5")])
    assert (result.inserted, result.duplicates, result.conflicts) == (0, 1, [])


def test_conflicting_amount_is_reported_not_overwritten(any_app):
    store(any_app, [snap(amount="1.5")])
    result = store(any_app, [snap(amount="2.5"), snap(minutes=1)])
    assert result.inserted == 1
    assert result.conflicts == [("main", "BTC", T0)]
    rows = stored(any_app)
    assert [r.amount for r in rows] == [Decimal("1.5"), Decimal("1.5")]


def test_conflicting_price_is_a_conflict_too(any_app):
    store(any_app, [snap(price="100")])
    result = store(any_app, [snap(price="101")])
    assert result.conflicts == [("main", "BTC", T0)]
    assert stored(any_app)[0].price == Decimal("100")


def test_conflict_inside_one_batch_keeps_the_first(any_app):
    result = store(any_app, [snap(amount="1"), snap(amount="2")])
    assert result.inserted == 1 and len(result.conflicts) == 1
    assert stored(any_app)[0].amount == Decimal("1")


def test_ids_follow_the_key_order_whatever_order_the_batch_was_sent_in(any_app):
    # Upper case sorts before lower case by code point, not in every collation: the
    # order must be the same on both backends, whatever PostgreSQL's collation.
    sent = [
        ("main", "ETH", 1),
        ("hedge", "BTC", 0),
        ("main", "BTC", 0),
        ("Main", "BTC", 0),
        ("hedge", "ETH", 1),
        ("main", "BTC", -1),
    ]
    store(any_app, [snap(account=a, asset=x, minutes=m) for a, x, m in sent])
    with any_app.app_context():
        by_id = db.session.execute(
            db.select(Position.account, Position.asset, Position.timestamp).order_by(Position.id)
        ).all()
    assert [(a, x, int((t - T0).total_seconds() // 60)) for a, x, t in by_id] == [
        ("Main", "BTC", 0),
        ("hedge", "BTC", 0),
        ("hedge", "ETH", 1),
        ("main", "BTC", -1),
        ("main", "BTC", 0),
        ("main", "ETH", 1),
    ]


def test_conflicts_are_reported_in_the_batch_order(any_app):
    store(any_app, [snap(asset=x, amount="1") for x in ("ADA", "BTC", "ETH")])
    result = store(any_app, [snap(asset=x, amount="2") for x in ("ETH", "ADA", "BTC")])
    assert result.conflicts == [("main", x, T0) for x in ("ETH", "ADA", "BTC")]


def test_latest_position_follows_newest_snapshot_and_never_goes_back(any_app):
    store(any_app, [snap(minutes=5, amount="5"), snap(minutes=1, amount="1")])
    assert latest(any_app).amount == Decimal("5")
    store(any_app, [snap(minutes=3, amount="3")])  # arrives late, older
    assert latest(any_app).amount == Decimal("5")
    assert latest(any_app).timestamp == T0 + timedelta(minutes=5)
    store(any_app, [snap(minutes=9, amount="9", price=None)])
    row = latest(any_app)
    assert (row.amount, row.price) == (Decimal("9"), None)


def test_timestamps_are_stored_in_utc(any_app):
    tokyo = timezone(timedelta(hours=9))
    store(any_app, [snap(at=T0.astimezone(tokyo))])
    (row,) = stored(any_app)
    assert row.timestamp == T0
    assert row.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "amount, price",
    [
        ("0.1", "0.2"),
        ("0.30000000000000004", "3"),
        ("123456789.123456789012345678", "0.000000000000000001"),
        ("-0.000000000000000001", "99999999999999999.99"),
        ("1E+3", "1.10"),
    ],
)
def test_decimals_round_trip_exactly(any_app, amount, price):
    store(any_app, [snap(amount=amount, price=price)])
    (row,) = stored(any_app)
    assert row.amount == Decimal(amount) and str(row.amount) == str(
        Decimal(format(Decimal(amount), "f"))
    )
    assert row.price == Decimal(price)
    assert latest(any_app).amount == Decimal(amount)


def test_snapshot_refuses_naive_times_and_non_finite_amounts():
    with pytest.raises(ValueError, match="timezone"):
        Snapshot("main", "BTC", T0.replace(tzinfo=None), Decimal("1"))
    with pytest.raises(ValueError, match="amount"):
        Snapshot("main", "BTC", T0, Decimal("NaN"))
    with pytest.raises(ValueError, match="price"):
        Snapshot("main", "BTC", T0, Decimal("1"), Decimal("Infinity"))
    with pytest.raises(ValueError, match="amount"):
        Snapshot("main", "BTC", T0, 1.5)
    with pytest.raises(ValueError, match="empty"):
        Snapshot("", "BTC", T0, Decimal("1"))


def test_snapshot_dated_2100_is_refused_and_nothing_of_the_batch_is_stored(any_app):
    with any_app.app_context():
        with pytest.raises(ImplausibleTimestamp, match="2100-01-01T00:00:00Z is in the future"):
            record([snap(), snap(at=datetime(2100, 1, 1, tzinfo=UTC))])
        db.session.rollback()
    assert stored(any_app) == []
    assert latest(any_app) is None


def test_snapshot_before_1970_is_refused(any_app):
    just_before = datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
    with any_app.app_context():
        with pytest.raises(ImplausibleTimestamp, match="before 1970-01-01T00:00:00Z"):
            record([snap(at=just_before)])
        db.session.rollback()
    assert stored(any_app) == []
    store(any_app, [snap(at=datetime(1970, 1, 1, tzinfo=UTC))])
    assert len(stored(any_app)) == 1


def test_future_times_within_the_configured_clock_skew_are_accepted(any_app):
    ahead = utcnow() + timedelta(minutes=2)
    store(any_app, [snap(at=ahead)])
    assert latest(any_app).timestamp == ahead
    any_app.config["CLOCK_SKEW_SECONDS"] = 30
    with any_app.app_context():
        with pytest.raises(ImplausibleTimestamp, match="clock skew allowed 30 s"):
            record([snap(at=utcnow() + timedelta(minutes=2), amount="2")])
        db.session.rollback()
    assert len(stored(any_app)) == 1


def test_clock_skew_defaults_to_five_minutes_and_is_read_from_the_environment(
    sqlite_url, monkeypatch
):
    assert build_app(sqlite_url).config["CLOCK_SKEW_SECONDS"] == 300
    monkeypatch.setenv("TRADINGMONITOR_CLOCK_SKEW_SECONDS", "60")
    app = create_app(TestingConfig)
    assert app.config["CLOCK_SKEW_SECONDS"] == 300  # the tests' config reads no environment
    app = create_app(type("FromEnvironment", (TestingConfig,), {"READ_ENVIRONMENT": True}))
    assert app.config["CLOCK_SKEW_SECONDS"] == 60


def test_a_moment_outside_utcs_range_is_a_value_error_not_an_overflow():
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=14)))
    with pytest.raises(ValueError, match="out of range"):
        Snapshot("main", "BTC", year_one, Decimal("1"))


def _record_in_process(url, start, barrier, queue):
    app = build_app(url)
    rows = [snap(minutes=i, amount=str(i)) for i in range(200)]
    with app.app_context():
        barrier.wait()
        result = record(rows)
        db.session.commit()
        queue.put((result.inserted, result.duplicates, len(result.conflicts)))
        db.engine.dispose()


def test_concurrent_record_from_two_processes_stores_one_copy(any_app):
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    queue = context.Queue()
    workers = [
        context.Process(target=_record_in_process, args=(url, 0, barrier, queue)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    results = sorted(queue.get(timeout=5) for _ in workers)
    assert sum(r[0] for r in results) == 200
    assert sum(r[1] for r in results) == 200
    assert all(r[2] == 0 for r in results)
    assert len(stored(any_app)) == 200
