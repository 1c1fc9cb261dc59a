"""`flask seed …` and `flask positions delete` through Flask's CLI runner."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.admin.models import AuditEvent
from app.alerts.engine import evaluate_all
from app.alerts.models import Alert, AlertRule, AlertState, RuleKind
from app.auth.models import Role, User
from app.db_types import utcnow
from app.extensions import db
from app.positions.models import LatestPosition, Position, PositionRollup
from app.positions.retention import delete_series_range, select_series
from app.positions.rollup import catch_up
from app.positions.seed import DemoMarket, demo_snapshots
from tests.alerts.helpers import add_rule
from tests.conftest import client_as
from tests.positions.helpers import T0, latest, snap, store


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
    # Two accounts, and the venue side of the demo's reconciliation of BTC.
    assert first.exit_code == 0 and count(app) == 3 * 288
    second = runner.invoke(args=args)
    assert second.exit_code == 0
    inserted, present = re.search(r"Inserted (\d+), already present (\d+)", second.output).groups()
    # Only a 5-minute boundary passing between the runs may add the newest step (to
    # the venue side too).
    assert (int(inserted), int(present)) in {(0, 576), (2, 574)}
    assert count(app) - 864 - int(inserted) in (0, 1)
    assert int(inserted) > 0 or count(app) == 864


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


# --- flask positions delete ----------------------------------------------------------

FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def store_legacy_row(app, at=FUTURE, amount="99"):
    """A snapshot stored before times were checked: written around ingest, as it once was."""
    with app.app_context():
        db.session.add(Position(account="main", asset="BTC", timestamp=at, amount=Decimal(amount)))
        row = db.session.get(LatestPosition, ("main", "BTC"))
        row.timestamp, row.amount, row.price = at, Decimal(amount), None
        db.session.commit()


def delete(app, *args, input=None):
    options = ["positions", "delete", "--account", "main", "--asset", "BTC", *args]
    return app.test_cli_runner().invoke(args=options, input=input)


def evaluate_pass(app) -> list[tuple]:
    """Run the worker's evaluation pass; the (rule, account, asset, state) of active alerts."""
    with app.app_context():
        evaluate_all()
        db.session.commit()
        rows = db.session.execute(
            db.select(AlertRule.name, Alert.account, Alert.asset, Alert.state)
            .join(AlertRule, Alert.rule_id == AlertRule.id)
            .where(Alert.state.in_(AlertState.ACTIVE))
        )
        return [tuple(row) for row in rows]


def test_delete_removes_a_2100_row_so_the_overview_and_the_stale_rule_see_the_truth(any_app):
    an_hour_ago = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    store(any_app, [snap(at=an_hour_ago, amount="1.5")])
    add_rule(any_app, "BTC feed stale", "300", kind=RuleKind.STALE_FEED)
    store_legacy_row(any_app)
    viewer = client_as(any_app, Role.VIEWER)
    assert "2100-01-01" in viewer.get("/").get_data(as_text=True)
    assert evaluate_pass(any_app) == []  # the 2100 row is "fresh": the rule is blind

    result = delete(any_app, "--at", "2100-01-01T00:00:00Z", "--yes")

    assert result.exit_code == 0, result.output
    assert "Deleted 1 snapshots." in result.output
    assert latest(any_app).timestamp == an_hour_ago
    assert latest(any_app).amount == Decimal("1.5")
    overview = viewer.get("/").get_data(as_text=True)
    assert "2100-01-01" not in overview and an_hour_ago.strftime("%Y-%m-%d %H:%M") in overview
    assert evaluate_pass(any_app) == [("BTC feed stale", "main", "BTC", AlertState.FIRING)]


def test_delete_is_audited_as_the_cli(app):
    store(app, [snap(minutes=0)])
    store_legacy_row(app)
    assert delete(app, "--at", "2100-01-01T00:00:00Z", "--yes").exit_code == 0
    with app.app_context():
        event = db.session.execute(db.select(AuditEvent)).scalar_one()
        assert (event.action, event.actor_name, event.target) == (
            "positions.delete",
            "cli",
            "positions:main/BTC",
        )
        assert event.detail["deleted"] == 1
        assert event.detail["latest_before"] == "2100-01-01T00:00:00Z"
        assert event.detail["latest_after"] == "2026-03-01T12:00:00Z"


def test_dry_run_reports_what_would_go_and_deletes_nothing(app):
    store(app, [snap(minutes=0), snap(minutes=1, amount="2")])
    store_legacy_row(app)
    result = delete(
        app, "--from", "2026-03-01T12:01:00Z", "--to", "2101-01-01T00:00Z", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "main\tBTC\t2" in result.output
    assert (
        "2 snapshots from 2026-03-01T12:01:00Z to 2100-01-01T00:00:00Z; latest position at "
        "2100-01-01T00:00:00Z becomes 2026-03-01T12:00:00Z."
    ) in result.output
    assert "Dry run: nothing deleted." in result.output
    assert count(app) == 3 and latest(app).timestamp == FUTURE
    with app.app_context():
        assert db.session.execute(db.select(AuditEvent)).first() is None


def test_without_yes_it_asks_and_a_no_deletes_nothing(app):
    store(app, [snap(minutes=0)])
    store_legacy_row(app)
    result = delete(app, "--at", "2100-01-01T00:00:00Z", input="n\n")
    assert result.exit_code == 1
    assert "Delete 1 snapshots? [y/N]" in result.output
    assert count(app) == 2
    result = delete(app, "--at", "2100-01-01T00:00:00Z", input="y\n")
    assert result.exit_code == 0 and count(app) == 1


def test_delete_of_a_range_refolds_the_hourly_rollups_of_the_hours_it_touched(any_app):
    store(any_app, [snap(minutes=m, amount=str(m)) for m in range(0, 120, 10)])
    with any_app.app_context():
        catch_up()
    # 12:30 to 13:20: part of hour 12, part of hour 13.
    result = delete(
        any_app, "--from", "2026-03-01T12:30:00Z", "--to", "2026-03-01T13:20:00Z", "--yes"
    )
    assert result.exit_code == 0, result.output
    assert "Deleted 5 snapshots." in result.output
    with any_app.app_context():
        hours = db.session.execute(
            db.select(PositionRollup).order_by(PositionRollup.hour_start)
        ).scalars()
        summary = [
            (h.hour_start.hour, h.rows, h.first_amount, h.last_amount, h.high_amount)
            for h in hours
        ]
    assert summary == [
        (12, 3, Decimal("0"), Decimal("20"), Decimal("20")),
        (13, 4, Decimal("80"), Decimal("110"), Decimal("110")),
    ]
    # The latest row was not among them: it stays.
    assert latest(any_app).amount == Decimal("110")


def test_a_snapshot_arriving_while_the_operator_reads_the_count_is_kept(any_app):
    # The range runs past now: the feed keeps writing into it while the prompt waits.
    store(any_app, [snap(minutes=m, amount=str(m)) for m in range(3)])
    with any_app.app_context():
        catch_up()
        found = select_series("main", "BTC", T0, T0 + timedelta(days=1))
    store(any_app, [snap(minutes=30, amount="30")])
    with any_app.app_context():
        deleted = delete_series_range(found)
        db.session.commit()
        catch_up()
        rollups = [(h.rows, h.last_amount) for h in db.session.scalars(db.select(PositionRollup))]
    assert deleted == found.count == 3
    assert count(any_app) == 1
    assert latest(any_app).amount == Decimal("30")
    assert rollups == [(1, Decimal("30"))]


def test_deleting_every_snapshot_of_a_series_removes_its_latest(app):
    store(app, [snap(minutes=m) for m in range(3)])
    result = delete(app, "--from", "2026-03-01T00:00Z", "--to", "2026-03-02T00:00Z", "--yes")
    assert result.exit_code == 0, result.output
    assert count(app) == 0 and latest(app) is None
    assert "becomes none" in result.output


def test_nothing_to_delete_says_so(app):
    store(app, [snap()])
    result = delete(app, "--at", "2026-03-01T12:00:01Z", "--yes")
    assert result.exit_code == 0
    assert "Nothing to delete." in result.output and count(app) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Give --at, or both --from and --to"),
        (["--from", "2026-03-01T00:00Z"], "Give --at, or both --from and --to"),
        (["--at", "2026-03-01T00:00Z", "--to", "2026-03-02T00:00Z"], "not both"),
        (["--from", "2026-03-02T00:00Z", "--to", "2026-03-01T00:00Z"], "must be before --to"),
        (["--at", "2026-03-01T00:00"], "has no timezone"),
        (["--at", "9999-12-31T23:59:59-01:00"], "out of range"),
    ],
)
def test_delete_refuses_unclear_options(app, args, message):
    store(app, [snap()])
    result = delete(app, *args, "--yes")
    assert result.exit_code == 2
    assert message in result.output
    assert count(app) == 1


def test_delete_needs_account_and_asset(app, runner):
    result = runner.invoke(args=["positions", "delete", "--at", "2100-01-01T00:00Z", "--yes"])
    assert result.exit_code == 2 and "--account" in result.output
