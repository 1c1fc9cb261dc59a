"""`flask seed …` through Flask's CLI runner."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.auth.models import User
from app.extensions import db
from app.positions.models import LatestPosition, Position
from app.positions.seed import DemoMarket, demo_snapshots


def count(app, model=Position):
    with app.app_context():
        return db.session.execute(db.select(db.func.count()).select_from(model)).scalar_one()


def test_seed_demo_writes_history_and_latest_rows(app, runner):
    result = runner.invoke(
        args=[
            "seed",
            "demo",
            "--assets",
            "BTC,ETH",
            "--accounts",
            "a,b",
            "--days",
            "1",
            "--interval",
            "1h",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Inserted 96" in result.output
    assert count(app) == 2 * 2 * 24
    assert count(app, LatestPosition) == 4


def test_seed_demo_twice_adds_nothing_twice(app, runner):
    args = ["seed", "demo", "--assets", "BTC", "--days", "1", "--interval", "5m"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0 and count(app) == 2 * 288
    second = runner.invoke(args=args)
    assert second.exit_code == 0
    inserted, present = re.search(r"Inserted (\d+), already present (\d+)", second.output).groups()
    # Only a 5-minute boundary passing between the runs may add the newest step.
    assert (int(inserted), int(present)) in {(0, 576), (2, 574)}
    assert count(app) == 576 + int(inserted)


def test_seed_values_depend_only_on_seed_series_and_time():
    now = datetime(2026, 5, 5, 10, 7, tzinfo=UTC)
    later = datetime(2026, 5, 6, 3, 0, tzinfo=UTC)
    kwargs = dict(assets=["BTC", "XYZ"], accounts=["a"], days=2, interval=60, seed=7)
    first = {s.key: s for s in demo_snapshots(now=now, **kwargs)}
    second = {s.key: s for s in demo_snapshots(now=later, **kwargs)}
    shared = first.keys() & second.keys()
    assert len(shared) > 1000
    assert all(first[k] == second[k] for k in shared)
    other_seed = {s.key: s for s in demo_snapshots(now=now, **{**kwargs, "seed": 8})}
    assert any(first[k].price != other_seed[k].price for k in first)


def test_seed_prices_walk_without_jumps_at_midnight():
    market = DemoMarket(seed=1, interval=60)
    midnight = 86_400 * 20_000
    before, after = market.price("BTC", midnight - 60), market.price("BTC", midnight)
    assert abs(after - before) / before < Decimal("0.01")
    assert market.price("BTC", midnight) == DemoMarket(1, 60).price("BTC", midnight)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--interval", "7x"], "interval must look like"),
        (["--interval", "7m"], "divide a day"),
        (["--assets", ","], "at least one name"),
        (["--accounts", " "], "at least one name"),
        (["--days", "0"], "0"),
        (["--seed", "abc"], "abc"),
    ],
)
def test_seed_demo_refuses_bad_options(app, runner, args, message):
    result = runner.invoke(args=["seed", "demo", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert count(app) == 0


def test_seed_conflict_with_another_seed_exits_non_zero(app, runner):
    base = [
        "seed",
        "demo",
        "--assets",
        "BTC",
        "--accounts",
        "a",
        "--days",
        "1",
        "--interval",
        "1h",
    ]
    assert runner.invoke(args=[*base, "--seed", "1"]).exit_code == 0
    result = runner.invoke(args=[*base, "--seed", "2"])
    assert result.exit_code == 1 and "differ from stored ones" in result.output
    assert count(app) == 24


def test_first_run_seeds_and_creates_admin_once(app, runner):
    result = runner.invoke(args=["seed", "first-run", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "username: admin" in result.output
    password = result.output.split("password: ")[1].split()[0]
    with app.app_context():
        admin = db.session.execute(db.select(User)).scalar_one()
        assert admin.role == "admin"
    from tests.conftest import Auth

    assert Auth(app.test_client()).login(username="admin", password=password).status_code == 302
    again = runner.invoke(args=["seed", "first-run"])
    assert "nothing seeded" in again.output and "password" not in again.output
    assert count(app, User) == 1


def test_seed_help(runner):
    for command in ("demo", "first-run"):
        result = runner.invoke(args=["seed", command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output
