"""`flask recon`: defining reconciliations from the shell, audited, and its status exit code."""

import json

import pytest

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.alerts.models import AlertRule, RuleKind
from app.extensions import db
from app.recon.models import Reconciliation, ReconState
from tests.recon.helpers import book, ingest, state, venue

pytestmark = pytest.mark.usefixtures("frozen_clock")

ADD = [
    "recon",
    "add",
    "binance",
    "--left",
    "main",
    "--right",
    "main@binance",
    "--asset",
    "XBT=BTC",
    "--asset",
    "ETHUSD=ETH-PERP,multiplier=0.01,abs=0.5",
    "--rel-tolerance",
    "0.1",
    "--grace",
    "30",
]


def audit_actions(app):
    with app.app_context():
        return (
            db.session.execute(db.select(AuditEvent.action).order_by(AuditEvent.id))
            .scalars()
            .all()
        )


def test_add_defines_the_pair_its_assets_and_an_alert_rule_audited(app, runner):
    result = runner.invoke(args=ADD)
    assert result.exit_code == 0, result.output
    assert "Added reconciliation 'binance' with 2 asset(s)." in result.output
    with app.app_context():
        recon = db.session.execute(db.select(Reconciliation)).scalar_one()
        eth = next(a for a in recon.assets if a.left_asset == "ETHUSD")
        assert (eth.right_asset, str(eth.multiplier), str(eth.abs_tolerance)) == (
            "ETH-PERP",
            "0.01",
            "0.5",
        )
        rule = db.session.execute(db.select(AlertRule)).scalar_one()
        assert (rule.kind, rule.account, rule.pending_seconds) == (
            RuleKind.RECON_BREAK,
            "main",
            30,
        )
        assert recon.rule_id == rule.id
    assert audit_actions(app) == [Action.RECON_CREATE]


def test_list_prints_the_definitions(app, runner):
    runner.invoke(args=ADD)
    result = runner.invoke(args=["recon", "list"])
    assert "binance: main (book) vs main@binance (venue)" in result.output
    assert "ETHUSD = ETH-PERP x 0.01, abs_tolerance 0.5" in result.output
    listed = json.loads(runner.invoke(args=["recon", "list", "--json"]).output)
    assert listed[0]["assets"][0]["left_asset"] == "ETHUSD"


def test_update_changes_only_what_is_given_and_asset_list_when_given(app, runner):
    runner.invoke(args=ADD)
    result = runner.invoke(args=["recon", "update", "binance", "--grace", "0"])
    assert "Updated reconciliation 'binance'." in result.output
    result = runner.invoke(args=["recon", "update", "binance", "--asset", "XBT=BTC"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        recon = db.session.execute(db.select(Reconciliation)).scalar_one()
        assert [a.left_asset for a in recon.assets] == ["XBT"]
        assert recon.grace_seconds == 0
        assert str(recon.rel_tolerance_percent) == "0.1"
        assert recon.rule.pending_seconds == 0
    assert audit_actions(app) == [Action.RECON_CREATE, Action.RECON_UPDATE, Action.RECON_UPDATE]


def test_delete_removes_it_with_its_rule(app, runner):
    runner.invoke(args=ADD)
    result = runner.invoke(args=["recon", "delete", "binance", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.execute(db.select(Reconciliation)).first() is None
        assert db.session.execute(db.select(AlertRule)).first() is None
    assert audit_actions(app)[-1] == Action.RECON_DELETE


@pytest.mark.parametrize(
    "args",
    [
        ["--asset", "XBT,lots=2"],
        ["--asset", "XBT,multiplier=two"],
        ["--asset", "XBT,multiplier=0"],
        ["--rel-tolerance", "-1", "--asset", "XBT"],
    ],
)
def test_bad_definitions_are_refused_and_nothing_is_saved(app, runner, args):
    result = runner.invoke(args=["recon", "add", "x", "--left", "main", "--right", "venue", *args])
    assert result.exit_code != 0
    with app.app_context():
        assert db.session.execute(db.select(Reconciliation)).first() is None


def test_status_exits_zero_when_all_matched_and_one_on_a_break(app, runner):
    ingest(app, book(amount="5"), venue(amount="5"))
    runner.invoke(
        args=[
            "recon",
            "add",
            "binance",
            "--left",
            "main",
            "--right",
            "main@binance",
            "--asset",
            "XBT=BTC",
        ]
    )
    result = runner.invoke(args=["recon", "status"])
    assert result.exit_code == 0, result.output
    assert "0 break, 0 unknown, 0 pending, 1 matched." in result.output
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=10))
    assert state(app) == ReconState.BREAK
    result = runner.invoke(args=["recon", "status", "--name", "binance"])
    assert result.exit_code == 1
    assert (
        "BREAK    binance XBT: book 5 vs venue 7.5, difference 2.5 (50.000000 %)" in result.output
    )


def test_status_exits_one_while_a_side_is_unknown(app, runner):
    ingest(app, book(amount="5"))
    runner.invoke(
        args=[
            "recon",
            "add",
            "binance",
            "--left",
            "main",
            "--right",
            "main@binance",
            "--asset",
            "XBT=BTC",
        ]
    )
    result = runner.invoke(args=["recon", "status"])
    assert result.exit_code == 1
    assert result.output.startswith("UNKNOWN  binance XBT")


def test_status_of_an_unknown_name_is_an_error(app, runner):
    result = runner.invoke(args=["recon", "status", "--name", "nope"])
    assert result.exit_code == 1
    assert "No reconciliation named 'nope'" in result.output


def test_the_alert_cli_leaves_a_reconciliation_rule_to_flask_recon(app, runner):
    runner.invoke(args=ADD)
    for command in (["disable-rule"], ["delete-rule", "--yes"]):
        result = runner.invoke(args=["alerts", command[0], "Reconciliation binance", *command[1:]])
        assert result.exit_code == 1
        assert "belongs to a reconciliation" in result.output
    with app.app_context():
        assert db.session.execute(db.select(AlertRule.enabled)).scalar_one() is True
