"""The evaluation engine: every rule kind, the lifecycle, ingest-time evaluation."""

import multiprocessing
from datetime import timedelta
from decimal import Decimal

import pytest

from app.alerts.engine import evaluate_all, evaluate_series
from app.alerts.models import ANY, Alert, AlertRule, AlertTransition, RuleKind
from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import record
from tests.conftest import build_app
from tests.positions.helpers import snap

NOW = utcnow().replace(microsecond=0)


def add_rule(app, **settings) -> int:
    settings.setdefault("name", "rule")
    settings.setdefault("kind", RuleKind.POSITION_ABOVE)
    settings.setdefault("threshold", Decimal("10"))
    with app.app_context():
        rule = AlertRule(**settings)
        db.session.add(rule)
        db.session.commit()
        return rule.id


CLOCK = {"now": NOW}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """Freeze the engine's clock; push() moves it to the newest snapshot it sends."""
    CLOCK["now"] = NOW
    monkeypatch.setattr("app.alerts.engine.utcnow", lambda: CLOCK["now"])
    # Ingest refuses times beyond its clock plus the skew: it must share the frozen clock.
    monkeypatch.setattr("app.positions.ingest.utcnow", lambda: CLOCK["now"])


def push(app, *snapshots):
    """Ingest through the one write path, as the API does; return the transitions."""
    CLOCK["now"] = max(s.timestamp for s in snapshots)
    with app.app_context():
        result = record(snapshots)
        db.session.commit()
        return [(t.account, t.asset, t.from_state, t.to_state) for t in result.transitions]


def at(seconds, **kwargs):
    return snap(at=NOW + timedelta(seconds=seconds), **kwargs)


def alerts(app):
    with app.app_context():
        return {
            (a.account, a.asset): (a.state, a.value)
            for a in db.session.execute(db.select(Alert)).scalars()
        }


def history(app):
    with app.app_context():
        return [
            (t.from_state, t.to_state)
            for t in db.session.execute(
                db.select(AlertTransition).order_by(AlertTransition.id)
            ).scalars()
        ]


def run_pass(app, seconds=0):
    with app.app_context():
        transitions = evaluate_all(now=NOW + timedelta(seconds=seconds))
        db.session.commit()
        return [(t.account, t.asset, t.from_state, t.to_state) for t in transitions]


def test_alert_without_pending_period_is_firing_when_ingest_returns(any_app):
    add_rule(any_app, threshold=Decimal("10"))
    assert push(any_app, at(0, amount="10")) == []
    assert alerts(any_app) == {}
    assert push(any_app, at(1, amount="10.000001")) == [("main", "BTC", "normal", "firing")]
    assert alerts(any_app) == {("main", "BTC"): ("firing", Decimal("10.000001"))}


def test_pending_period_then_firing_then_resolved(any_app):
    add_rule(any_app, pending_seconds=60)
    assert push(any_app, at(0, amount="11")) == [("main", "BTC", "normal", "pending")]
    assert run_pass(any_app, 59) == []
    assert run_pass(any_app, 60) == [("main", "BTC", "pending", "firing")]
    assert push(any_app, at(70, amount="3")) == [("main", "BTC", "firing", "resolved")]
    assert history(any_app) == [
        ("normal", "pending"),
        ("pending", "firing"),
        ("firing", "resolved"),
    ]


def test_condition_clearing_during_pending_goes_back_to_normal(any_app):
    add_rule(any_app, pending_seconds=60)
    push(any_app, at(0, amount="11"))
    assert push(any_app, at(30, amount="9")) == [("main", "BTC", "pending", "normal")]
    assert run_pass(any_app, 120) == []
    assert alerts(any_app)[("main", "BTC")][0] == "normal"


def test_clear_threshold_keeps_a_hovering_value_from_flapping(any_app):
    add_rule(any_app, threshold=Decimal("100"), clear_threshold=Decimal("90"))
    assert push(any_app, at(0, amount="101")) == [("main", "BTC", "normal", "firing")]
    for i, amount in enumerate(["99", "95", "100.5", "90.01"], start=1):
        assert push(any_app, at(i, amount=amount)) == []
    assert push(any_app, at(9, amount="90")) == [("main", "BTC", "firing", "resolved")]
    # Below the threshold but above the clear level: a resolved alert does not re-fire.
    assert push(any_app, at(10, amount="95")) == []


def test_refiring_clears_the_acknowledgement(any_app):
    add_rule(any_app)
    push(any_app, at(0, amount="11"))
    with any_app.app_context():
        alert = db.session.execute(db.select(Alert)).scalar_one()
        alert.acknowledged_at, alert.acknowledgement = utcnow(), "on it"
        db.session.commit()
    push(any_app, at(1, amount="12"))
    with any_app.app_context():
        assert db.session.execute(db.select(Alert.acknowledgement)).scalar_one() == "on it"
    push(any_app, at(2, amount="1"))
    push(any_app, at(3, amount="50"))
    with any_app.app_context():
        alert = db.session.execute(db.select(Alert)).scalar_one()
        assert alert.state == "firing" and alert.acknowledged_at is None
        assert alert.acknowledgement is None


def test_position_below(any_app):
    add_rule(any_app, kind=RuleKind.POSITION_BELOW, threshold=Decimal("-5"))
    assert push(any_app, at(0, amount="-5")) == []
    assert push(any_app, at(1, amount="-5.1")) == [("main", "BTC", "normal", "firing")]


def test_notional_above_uses_absolute_amount_times_price(any_app):
    add_rule(any_app, kind=RuleKind.NOTIONAL_ABOVE, threshold=Decimal("1000"))
    assert push(any_app, at(0, amount="-10", price="100")) == []
    assert push(any_app, at(1, amount="-10", price="100.01")) == [
        ("main", "BTC", "normal", "firing")
    ]
    assert alerts(any_app)[("main", "BTC")][1] == Decimal("1000.1000")
    # No price, no notional: the alert resolves rather than guessing.
    assert push(any_app, at(2, amount="-10", price=None)) == [
        ("main", "BTC", "firing", "resolved")
    ]


@pytest.mark.parametrize("percent, threshold", [(False, "5"), (True, "50")])
def test_change_over_window_absolute_and_percent(any_app, percent, threshold):
    add_rule(
        any_app,
        kind=RuleKind.CHANGE_OVER_WINDOW,
        threshold=Decimal(threshold),
        window_seconds=60,
        change_percent=percent,
    )
    assert push(any_app, at(0, amount="10"), at(30, amount="14")) == []
    # 60 s after the 10: +6 = +60 %.
    assert push(any_app, at(60, amount="16")) == [("main", "BTC", "normal", "firing")]
    # A flip to -16 against 14 a window earlier: -30, or -214.28… %; still firing.
    assert push(any_app, at(90, amount="-16")) == []
    state, value = alerts(any_app)[("main", "BTC")]
    assert state == "firing"
    assert value == (Decimal("-214.285714") if percent else Decimal("-30"))
    # Back within the limit a window later: resolved.
    assert push(any_app, at(150, amount="-16.5")) == [("main", "BTC", "firing", "resolved")]


def test_gross_exposure_is_per_account_over_all_assets(any_app):
    add_rule(any_app, kind=RuleKind.GROSS_EXPOSURE_ABOVE, threshold=Decimal("1000"))
    push(
        any_app,
        at(0, asset="BTC", amount="5", price="100"),
        at(0, account="other", asset="BTC", amount="50", price="100"),
    )
    assert alerts(any_app) == {("other", ANY): ("firing", Decimal("5000"))}
    assert push(any_app, at(1, asset="ETH", amount="-6", price="100")) == [
        ("main", ANY, "normal", "firing")
    ]
    assert alerts(any_app)[("main", ANY)] == ("firing", Decimal("1100"))


def test_stale_feed_fires_as_time_passes_and_resolves_on_new_data(any_app):
    add_rule(any_app, kind=RuleKind.STALE_FEED, threshold=Decimal("300"))
    assert push(any_app, at(0)) == []  # time-based: not evaluated at ingest
    assert run_pass(any_app, 300) == []
    assert run_pass(any_app, 301) == [("main", "BTC", "normal", "firing")]
    push(any_app, at(302))
    assert run_pass(any_app, 303) == [("main", "BTC", "firing", "resolved")]


def test_scope_limits_rules_to_their_asset_and_account(any_app):
    add_rule(any_app, asset="ETH", account="main")
    push(any_app, at(0, asset="BTC", amount="99"), at(0, account="x", asset="ETH", amount="99"))
    assert alerts(any_app) == {}
    push(any_app, at(1, asset="ETH", amount="99"))
    assert set(alerts(any_app)) == {("main", "ETH")}


def test_every_matching_series_has_its_own_alert(any_app):
    add_rule(any_app)
    push(any_app, *(at(0, account=a, asset=s, amount="11") for a in "ab" for s in ("X", "Y")))
    assert set(alerts(any_app)) == {("a", "X"), ("a", "Y"), ("b", "X"), ("b", "Y")}


def test_disabled_rules_are_not_evaluated(any_app):
    add_rule(any_app, enabled=False)
    assert push(any_app, at(0, amount="99")) == []
    assert run_pass(any_app) == []


def test_evaluate_series_ignores_unchanged_series(any_app):
    add_rule(any_app)
    push(any_app, at(0, asset="A", amount="1"))
    with any_app.app_context():
        assert evaluate_series(set()) == []


def _worker_pass(url, barrier, queue):
    app = build_app(url)
    with app.app_context():
        barrier.wait()
        transitions = evaluate_all(now=NOW + timedelta(seconds=61))
        db.session.commit()
        queue.put(len(transitions))
        db.engine.dispose()


def test_two_workers_at_once_never_duplicate_alerts_or_transitions(any_app):
    add_rule(any_app, pending_seconds=60)
    push(any_app, *(at(0, account=f"acct{i}", amount="11") for i in range(20)))
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_worker_pass, args=(url, barrier, queue)) for _ in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert sorted(queue.get(timeout=5) for _ in workers) in ([0, 20], [20, 0])
    assert len(alerts(any_app)) == 20
    assert history(any_app).count(("pending", "firing")) == 20
