"""`flask alerts …` through Flask's CLI runner."""

import re
from datetime import timedelta

import pytest

from app.admin.audit import Action
from app.alerts.models import Alert, AlertRule, Channel
from app.db_types import utcnow
from app.extensions import db
from tests.admin.helpers import events, only_event
from tests.positions.helpers import snap, store

HOOK_SECRET = "T000/B000/very-secret-path"


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
    assert events(app) == []


def test_list_without_alerts_says_so(runner):
    assert "No pending or firing alerts" in runner.invoke(args=["alerts", "list"]).output


@pytest.mark.parametrize("command", ["add-rule", "evaluate", "run", "list"])
def test_every_alerts_command_has_help(runner, command):
    result = runner.invoke(args=["alerts", command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize(
    "args, action, target, detail",
    [
        (
            [
                "add-channel",
                "ops",
                "--kind",
                "webhook",
                "--target",
                f"https://h.example/{HOOK_SECRET}",
            ],
            Action.CHANNEL_CREATE,
            "channel",
            {"name": "ops", "kind": "webhook"},
        ),
        (
            ["add-channel", "desk", "--kind", "email", "--target", "desk@example.com"],
            Action.CHANNEL_CREATE,
            "channel",
            {"name": "desk", "kind": "email"},
        ),
        (
            ["add-rule", "cap", "--kind", "position_above", "--threshold", "2"],
            Action.RULE_CREATE,
            "rule",
            {"name": "cap", "kind": "position_above", "enabled": True},
        ),
    ],
)
def test_each_changing_command_is_audited_with_the_cli_as_actor(
    app, runner, args, action, target, detail
):
    result = runner.invoke(args=["alerts", *args])
    assert result.exit_code == 0, result.output
    event = only_event(app, action, HOOK_SECRET, "desk@example.com")
    assert (event.actor_name, event.actor_id, event.detail) == ("cli", None, detail)
    number = re.fullmatch(rf"{target}:(\d+)", event.target)
    model = {"rule": AlertRule, "channel": Channel}[target]
    with app.app_context():
        assert db.session.get(model, int(number.group(1))).name == detail["name"]
    assert [e.action for e in events(app)] == [action]


def test_a_refused_channel_leaves_no_audit_entry(app, runner):
    runner.invoke(args=["alerts", "add-channel", "ops", "--kind", "webhook", "--target", "x"])
    runner.invoke(
        args=[
            "alerts",
            "add-rule",
            "r",
            "--kind",
            "stale_feed",
            "--threshold",
            "9",
            "--channel",
            "nope",
        ]
    )
    assert events(app) == []
