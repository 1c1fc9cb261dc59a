"""Preview replays history with the live state machine: both must agree."""

import random
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from app.alerts.models import AlertRule, AlertTransition, Channel, RuleKind
from app.alerts.preview import preview_rule
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import record
from app.positions.models import LatestPosition, Position
from tests.conftest import client_as, csrf_token_from
from tests.positions.helpers import snap

START = utcnow().replace(microsecond=0) - timedelta(hours=2)

RULES = {
    "above-hysteresis": dict(
        kind=RuleKind.POSITION_ABOVE, threshold=Decimal("10"), clear_threshold=Decimal("8")
    ),
    "below-pending": dict(
        kind=RuleKind.POSITION_BELOW, threshold=Decimal("-5"), pending_seconds=120
    ),
    "notional": dict(kind=RuleKind.NOTIONAL_ABOVE, threshold=Decimal("900")),
    "change-abs": dict(
        kind=RuleKind.CHANGE_OVER_WINDOW, threshold=Decimal("6"), window_seconds=180
    ),
    "change-pct": dict(
        kind=RuleKind.CHANGE_OVER_WINDOW,
        threshold=Decimal("80"),
        window_seconds=120,
        change_percent=True,
    ),
    "gross": dict(kind=RuleKind.GROSS_EXPOSURE_ABOVE, threshold=Decimal("1500")),
}


def history(seed=7, steps=60):
    rng = random.Random(seed)
    rows = []
    for step in range(steps):
        for account, asset in (("a", "BTC"), ("a", "ETH"), ("b", "BTC")):
            amount = Decimal(rng.randint(-120, 150)) / 10
            price = None if rng.random() < 0.1 else Decimal(rng.randint(50, 120))
            rows.append(
                snap(
                    account=account,
                    asset=asset,
                    amount=str(amount),
                    price=None if price is None else str(price),
                    at=START + timedelta(seconds=60 * step + rng.randint(0, 30)),
                )
            )
    return sorted(rows, key=lambda s: s.timestamp)


@pytest.mark.parametrize("name", sorted(RULES))
def test_preview_gives_the_same_transitions_as_live_evaluation(any_app, monkeypatch, name):
    with any_app.app_context():
        rule = AlertRule(name=name, repeat_interval_seconds=0, **RULES[name])
        db.session.add(rule)
        db.session.commit()
        for snapshot in history():
            # Live: each snapshot ingested on its own, evaluated at its own time.
            monkeypatch.setattr("app.alerts.engine.utcnow", lambda at=snapshot.timestamp: at)
            record([snapshot])
            db.session.commit()
        live = [
            (t.at, t.alert.account, t.alert.asset, t.from_state, t.to_state, t.value)
            for t in db.session.execute(
                db.select(AlertTransition).order_by(AlertTransition.at, AlertTransition.id)
            ).scalars()
        ]
        replay = preview_rule(rule, days=1, now=utcnow())
        previewed = [
            (t.at, t.account, t.asset, t.from_state, t.to_state, t.value)
            for t in replay.transitions
        ]
    assert len(live) >= 3, "the data should exercise the rule"
    assert previewed == live


def test_preview_counts_notifications_per_channel(app):
    with app.app_context():
        rule = AlertRule(
            name="x",
            kind=RuleKind.POSITION_ABOVE,
            threshold=Decimal("10"),
            repeat_interval_seconds=0,
            channels=[
                Channel(name="a", kind="webhook", target="http://h/1"),
                Channel(name="b", kind="webhook", target="http://h/2"),
            ],
        )
        db.session.add(rule)
        db.session.commit()
        rule.enabled = False
        db.session.commit()
        record(
            [
                snap(minutes=0, amount="11", at=START),
                snap(amount="1", at=START + timedelta(minutes=1)),
            ]
        )
        db.session.commit()
        result = preview_rule(rule, days=1, now=utcnow())
    assert [t.to_state for t in result.transitions] == ["firing", "resolved"]
    assert result.notifications == 4


@pytest.mark.parametrize("pending", [0, 30])
def test_stale_feed_preview_fires_in_the_gaps(app, pending):
    gaps = [0, 60, 120, 400, 460, 1000]  # quiet from 120 to 400 and from 460 to 1000
    with app.app_context():
        record([snap(at=START + timedelta(seconds=s)) for s in gaps])
        db.session.commit()
        rule = AlertRule(
            kind=RuleKind.STALE_FEED,
            threshold=Decimal("200"),
            pending_seconds=pending,
            repeat_interval_seconds=0,
            send_resolved=True,
        )
        result = preview_rule(rule, days=1, now=START + timedelta(seconds=1100))
    at = [(int((t.at - START).total_seconds()), t.to_state) for t in result.transitions]
    if pending:
        assert at == [
            (320, "pending"),
            (350, "firing"),
            (400, "resolved"),
            (660, "pending"),
            (690, "firing"),
            (1000, "resolved"),
        ]
    else:
        assert at == [(320, "firing"), (400, "resolved"), (660, "firing"), (1000, "resolved")]
    assert result.notifications == 4


def test_stale_feed_preview_matches_a_worker_that_evaluates_every_second(app, monkeypatch):
    from app.alerts.engine import evaluate_all

    with app.app_context():
        record([snap(at=START + timedelta(seconds=s)) for s in (0, 30, 200, 230)])
        db.session.commit()
        rule = AlertRule(
            name="quiet",
            kind=RuleKind.STALE_FEED,
            threshold=Decimal("60"),
            repeat_interval_seconds=0,
            enabled=False,
        )
        db.session.add(rule)
        db.session.commit()
        previewed = [
            (t.at, t.to_state)
            for t in preview_rule(rule, 1, START + timedelta(seconds=300)).transitions
        ]
        # Live: replay the same data with a worker pass every second.
        db.session.execute(db.delete(Position))
        db.session.execute(db.delete(LatestPosition))
        rule.enabled = True
        db.session.commit()
        pending = [START + timedelta(seconds=s) for s in (0, 30, 200, 230)]
        for second in range(0, 301):
            now = START + timedelta(seconds=second)
            monkeypatch.setattr("app.alerts.engine.utcnow", lambda now=now: now)
            while pending and pending[0] <= now:
                record([snap(at=pending.pop(0))])
            evaluate_all(now=now)
            db.session.commit()
        live = [
            (t.at, t.to_state)
            for t in db.session.execute(
                db.select(AlertTransition).order_by(AlertTransition.id)
            ).scalars()
        ]
    # The worker fires at its first pass strictly after the threshold: one second later.
    assert [
        (at + timedelta(seconds=1), s) if s == "firing" else (at, s) for at, s in previewed
    ] == live


def test_rule_form_preview_shows_results_without_saving(app):
    with app.app_context():
        record(history(steps=20))
        db.session.commit()
    client = client_as(app, Role.OPERATOR, "op")
    token = csrf_token_from(client, "/alerts/rules/new")
    response = client.post(
        "/alerts/rules/new",
        data={
            "csrf_token": token,
            "name": "try",
            "kind": "position_above",
            "asset": "*",
            "account": "*",
            "threshold": "10",
            "pending_seconds": "0",
            "repeat_interval_seconds": "0",
            "severity": "warning",
            "send_resolved": "y",
            "enabled": "y",
            "action": "preview",
            "preview_days": "1",
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="preview"' in html and "transition(s)" in html and "firing</span>" in html
    with app.app_context():
        assert db.session.execute(db.select(AlertRule)).first() is None


def _steps(app):
    """main/BTC: 5, 12 (fires), 11 (above the clear level 8), 7 (resolves), 15 (fires
    again, still firing); main/ETH fires first, at 20, and never resolves."""
    amounts = {0: "5", 10: "12", 20: "11", 30: "7", 40: "15"}
    rows = [
        snap(asset="BTC", amount=a, at=START + timedelta(minutes=m)) for m, a in amounts.items()
    ]
    rows.append(snap(asset="ETH", amount="20", at=START + timedelta(minutes=5)))
    with app.app_context():
        record(sorted(rows, key=lambda s: s.timestamp))
        db.session.commit()


TYPED = {
    "name": "try",
    "kind": "position_above",
    "asset": "*",
    "account": "*",
    "threshold": "10",
    "clear_threshold": "8",
    "pending_seconds": "0",
    "repeat_interval_seconds": "0",
    "severity": "warning",
    "preview_days": "1",
}


def iso(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def test_preview_overlay_has_the_typed_lines_and_where_the_rule_would_have_fired(app):
    _steps(app)
    client = client_as(app, Role.OPERATOR, "op")

    document = client.get("/alerts/rules/preview.json", query_string=TYPED).get_json()

    # Asset "*": the chart shows the first asset it would have fired on, ETH.
    assert document["spans"] == [
        {"from": iso(5), "to": None, "label": "would fire · main", "kind": "preview"}
    ]
    assert document["limits"] == [
        {"label": "try", "value": "10", "metric": "amount", "kind": "limit", "rule_id": None},
        {
            "label": "try",
            "value": "8",
            "metric": "amount",
            "kind": "clear",
            "rule_id": None,
        },
    ]
    btc = client.get(
        "/alerts/rules/preview.json", query_string={**TYPED, "chart_asset": "BTC"}
    ).get_json()
    assert btc["spans"] == [
        {"from": iso(10), "to": iso(30), "label": "would fire · main", "kind": "preview"},
        {"from": iso(40), "to": None, "label": "would fire · main", "kind": "preview"},
    ]


def test_preview_overlay_refuses_a_bad_rule_and_viewers(app):
    client = client_as(app, Role.OPERATOR, "op")
    bad = client.get("/alerts/rules/preview.json", query_string={**TYPED, "threshold": "x"})
    assert bad.status_code == 400 and "threshold" in bad.get_json()["fields"]
    inverted = client.get(
        "/alerts/rules/preview.json", query_string={**TYPED, "clear_threshold": "12"}
    )
    assert inverted.status_code == 400 and "clear threshold" in inverted.get_json()["message"]
    viewer = client_as(app, Role.VIEWER, "vic")
    assert viewer.get("/alerts/rules/preview.json", query_string=TYPED).status_code == 403


def test_rule_form_preview_draws_its_chart_from_the_overlay(app):
    _steps(app)
    client = client_as(app, Role.OPERATOR, "op")
    token = csrf_token_from(client, "/alerts/rules/new")

    html = client.post(
        "/alerts/rules/new",
        data={**TYPED, "asset": "BTC", "csrf_token": token, "action": "preview"},
    ).get_data(as_text=True)

    overlay = re.search(r'data-overlay-url="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert overlay.startswith("/alerts/rules/preview.json?")
    assert 'data-series-url="/positions/BTC/series"' in html
    spans = client.get(overlay).get_json()["spans"]
    assert [(s["from"], s["to"]) for s in spans] == [(iso(10), iso(30)), (iso(40), None)]
    # The list stays beside the chart.
    assert html.count("firing</span>") == 2


def test_preview_sums_gross_exposure_at_every_stored_digit(any_app):
    # 1E+27 + 0.5 plus 1E-10: beyond the limit only with every digit kept.
    with any_app.app_context():
        rule = AlertRule(
            name="gross-long",
            kind=RuleKind.GROSS_EXPOSURE_ABOVE,
            threshold=Decimal("1000000000000000000000000000.5"),
        )
        db.session.add(rule)
        record(
            [
                snap(asset="BTC", amount="1000000000000000000000000000.5", price="1", at=START),
                snap(asset="ETH", amount="-0.0000000001", price="1", at=START),
            ]
        )
        db.session.commit()

        preview = preview_rule(rule, days=1, now=utcnow())

    assert [(t.to_state, t.value) for t in preview.transitions] == [
        ("firing", Decimal("1000000000000000000000000000.5000000001"))
    ]
