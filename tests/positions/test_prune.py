"""`flask positions prune`: retention in batches, with a dry run."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.positions import retention
from app.positions.models import LatestPosition, Position
from tests.positions.helpers import T0, snap, store


def _timestamps(app):
    with app.app_context():
        return sorted(db.session.scalars(select(Position.timestamp)))


@pytest.fixture
def history(any_app):
    # Two days of hourly snapshots for two series; the last hour is each latest row.
    store(
        any_app, [snap(asset=asset, minutes=60 * h) for asset in ("BTC", "ETH") for h in range(48)]
    )
    return any_app


def test_prune_deletes_only_snapshots_before_the_moment_and_keeps_latest_rows(history):
    runner = history.test_cli_runner()
    before = (T0 + timedelta(hours=24)).isoformat()

    result = runner.invoke(args=["positions", "prune", "--before", before, "--yes"])

    assert result.exit_code == 0, result.output
    assert "Deleted 48 snapshots." in result.output
    left = _timestamps(history)
    assert len(left) == 48
    assert min(left) == T0 + timedelta(hours=24)
    with history.app_context():
        assert db.session.scalar(select(func.count()).select_from(LatestPosition)) == 2


def test_prune_dry_run_counts_per_series_and_deletes_nothing(history):
    runner = history.test_cli_runner()

    result = runner.invoke(args=["positions", "prune", "--before", "2026-03-02", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "main\tBTC\t12" in result.output
    assert "main\tETH\t12" in result.output
    assert "24 snapshots older than 2026-03-02T00:00:00+00:00." in result.output
    assert "Dry run: nothing deleted." in result.output
    assert len(_timestamps(history)) == 96


def test_prune_works_in_batches_until_nothing_older_is_left(history):
    with history.app_context():
        deleted = retention.prune_before(T0 + timedelta(hours=30), batch_size=7)
    assert deleted == 60
    assert min(_timestamps(history)) == T0 + timedelta(hours=30)


def test_prune_asks_before_deleting_and_stops_on_no(history):
    runner = history.test_cli_runner()

    result = runner.invoke(args=["positions", "prune", "--before", "2026-03-02"], input="n\n")

    assert result.exit_code == 1
    assert "Aborted" in result.output
    assert len(_timestamps(history)) == 96


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "yesterday"),
        ("2026-13-01", "is not a date"),
        ("2026-03-01T12:00:00", "timezone"),
        ("2999-01-01", "in the future"),
    ],
)
def test_prune_refuses_bad_moments(history, value, message):
    runner = history.test_cli_runner()

    result = runner.invoke(args=["positions", "prune", "--before", value, "--yes"])

    assert result.exit_code == 2
    assert message in result.output
    assert len(_timestamps(history)) == 96
