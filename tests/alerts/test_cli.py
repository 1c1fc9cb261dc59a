"""`flask alerts …` through Flask's CLI runner."""

from datetime import timedelta

import pytest

from app.alerts.models import Alert, AlertRule
from app.db_types import utcnow
from app.extensions import db
from tests.positions.helpers import snap, store


def rules(app):
    with app.app_context():
        return db.session.execute(db.select(AlertRule)).scalars().all()


def test_add_rule_then_evaluate_and_list(app, runner):
    result = runner.invoke(
        args=[
            "alerts",
            "add-rule",
            "feed silent",
            "--kind",
            "stale_feed",
            "--threshold",
            "60",
            "--severity",
            "critical",
        ]
    )
    assert result.exit_code == 0, result.output
    store(app, [snap(at=utcnow() - timedelta(minutes=5))])
    evaluated = runner.invoke(args=["alerts", "evaluate"])
    assert evaluated.exit_code == 0
    assert "normal -> firing" in evaluated.output and "1 transition(s)" in evaluated.output
    listing = runner.invoke(args=["alerts", "list"]).output
    assert "firing" in listing and "feed silent" in listing and "main/BTC" in listing
    again = runner.invoke(args=["alerts", "evaluate"])
    assert "0 transition(s)" in again.output
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Alert.id))).scalar_one() == 1


def test_run_does_a_bounded_number_of_passes(app, runner):
    runner.invoke(
        args=["alerts", "add-rule", "big", "--kind", "position_above", "--threshold", "1"]
    )
    store(app, [snap(amount="5")])
    result = runner.invoke(args=["alerts", "run", "--interval", "0.1", "--passes", "2"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kind", "position_above", "--threshold", "abc"], "not a number"),
        (["--kind", "position_above", "--threshold", "NaN"], "finite"),
        (["--kind", "change_over_window", "--threshold", "5"], "needs --window"),
        (["--kind", "stale_feed", "--threshold", "0"], "positive threshold"),
        (
            ["--kind", "position_above", "--threshold", "10", "--clear-threshold", "11"],
            "at or below",
        ),
        (
            ["--kind", "position_below", "--threshold", "10", "--clear-threshold", "9"],
            "at or above",
        ),
        (["--kind", "sideways", "--threshold", "1"], "sideways"),
    ],
)
def test_add_rule_refuses_bad_settings(app, runner, args, message):
    result = runner.invoke(args=["alerts", "add-rule", "r", *args])
    assert result.exit_code == 2 and message in result.output
    assert rules(app) == []


def test_list_without_alerts_says_so(runner):
    assert "No pending or firing alerts" in runner.invoke(args=["alerts", "list"]).output


@pytest.mark.parametrize("command", ["add-rule", "evaluate", "run", "list"])
def test_every_alerts_command_has_help(runner, command):
    result = runner.invoke(args=["alerts", command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
