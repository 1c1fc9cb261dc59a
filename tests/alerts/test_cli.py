"""`flask alerts …` through Flask's CLI runner."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from app.admin.audit import Action
from app.alerts.cli import alerts_cli
from app.alerts.models import Alert, AlertRule, Channel, Silence
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
        (["--kind", "position_above", "--threshold", "\uff11\uff12"], "digits 0-9"),
        (["--kind", "position_above", "--threshold", "\u0661"], "digits 0-9"),
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


@pytest.mark.parametrize("command", sorted(alerts_cli.commands))
def test_every_alerts_command_has_help(runner, command):
    result = runner.invoke(args=["alerts", command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.fixture
def existing(app):
    """Rules `limit` (enabled) and `dormant` (disabled), channels `hook` and `quiet` (disabled)
    and a running silence, made without the CLI or the pages: no audit rows yet."""
    with app.app_context():
        now = utcnow()
        db.session.add_all(
            [
                AlertRule(name="limit", kind="position_above", threshold=Decimal("1")),
                AlertRule(
                    name="dormant", kind="position_above", threshold=Decimal("1"), enabled=False
                ),
                Channel(name="hook", kind="webhook", target="https://h.example/1"),
                Channel(name="quiet", kind="webhook", target="https://h.example/2", enabled=False),
                Silence(starts_at=now, ends_at=now + timedelta(hours=1), comment="deploy"),
            ]
        )
        db.session.commit()


RULE_1 = {"name": "limit"}
MODELS = {"rule": AlertRule, "channel": Channel, "silence": Silence}


@pytest.mark.parametrize(
    "args, action, detail, after",
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
            {"name": "ops", "kind": "webhook"},
            {"name": "ops"},
        ),
        (
            ["add-channel", "desk", "--kind", "email", "--target", "desk@example.com"],
            Action.CHANNEL_CREATE,
            {"name": "desk", "kind": "email"},
            {"name": "desk"},
        ),
        (
            ["add-rule", "cap", "--kind", "position_above", "--threshold", "2"],
            Action.RULE_CREATE,
            {"name": "cap", "kind": "position_above", "enabled": True},
            {"name": "cap"},
        ),
        (["disable-rule", "limit"], Action.RULE_DISABLE, RULE_1, {"enabled": False}),
        (["disable-rule", "1"], Action.RULE_DISABLE, RULE_1, {"enabled": False}),
        (["enable-rule", "dormant"], Action.RULE_ENABLE, {"name": "dormant"}, {"enabled": True}),
        (["delete-rule", "limit", "--yes"], Action.RULE_DELETE, RULE_1, None),
        (
            ["disable-channel", "hook"],
            Action.CHANNEL_UPDATE,
            {"name": "hook", "enabled": False},
            {"enabled": False},
        ),
        (
            ["enable-channel", "quiet"],
            Action.CHANNEL_UPDATE,
            {"name": "quiet", "enabled": True},
            {"enabled": True},
        ),
        (["delete-channel", "hook", "--yes"], Action.CHANNEL_DELETE, {"name": "hook"}, None),
        (
            ["add-silence", "--rule", "limit", "--asset", "BTC", "--hours", "2", "--comment", "x"],
            Action.SILENCE_CREATE,
            {"rule_id": 1, "account": "*", "asset": "BTC", "hours": "2"},
            {"asset": "BTC", "rule_id": 1},
        ),
        (["expire-silence", "1"], Action.SILENCE_EXPIRE, None, {"comment": "deploy"}),
    ],
)
def test_each_changing_command_is_audited_with_the_cli_as_actor(
    app, runner, existing, args, action, detail, after
):
    result = runner.invoke(args=["alerts", *args])
    assert result.exit_code == 0, result.output
    event = only_event(app, action, HOOK_SECRET, "desk@example.com")
    assert (event.actor_name, event.actor_id, event.detail) == ("cli", None, detail)
    kind, number = re.fullmatch(r"(rule|channel|silence):(\d+)", event.target).groups()
    assert kind == action.split(".")[0]
    with app.app_context():
        changed = db.session.get(MODELS[kind], int(number))
        if after is None:
            assert changed is None
        else:
            assert {name: getattr(changed, name) for name in after} == after
            if kind == "silence" and action == Action.SILENCE_EXPIRE:
                assert changed.ends_at <= utcnow()
    assert [e.action for e in events(app)] == [action]


@pytest.mark.parametrize(
    "args",
    [
        ["enable-rule", "limit"],
        ["disable-rule", "dormant"],
        ["enable-channel", "hook"],
        ["disable-channel", "quiet"],
    ],
)
def test_a_command_that_changes_nothing_leaves_no_audit_entry(app, runner, existing, args):
    result = runner.invoke(args=["alerts", *args])
    assert result.exit_code == 0 and "already" in result.output
    assert events(app) == []


@pytest.mark.parametrize(
    "args",
    [
        ["enable-rule", "nope"],
        ["delete-rule", "99", "--yes"],
        ["delete-channel", "nope", "--yes"],
        ["expire-silence", "99"],
        ["add-silence", "--rule", "nope", "--hours", "1", "--comment", "x"],
        ["add-silence", "--hours", "0", "--comment", "x"],
        ["add-silence", "--hours", "1", "--comment", " "],
    ],
)
def test_a_refused_command_changes_nothing(app, runner, existing, args):
    assert runner.invoke(args=["alerts", *args]).exit_code != 0
    assert events(app) == []
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Silence.id))).scalar_one() == 1


def test_deleting_asks_first(app, runner, existing):
    result = runner.invoke(args=["alerts", "delete-rule", "limit"], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert events(app) == [] and len(rules(app)) == 2


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
