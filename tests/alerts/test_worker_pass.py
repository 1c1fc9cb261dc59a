"""The worker pass: a read-only scan, then short locked writes for what changes only."""

import contextlib
import sqlite3
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from app.alerts import engine
from app.alerts.engine import evaluate_all, plan_pass
from app.alerts.models import Alert, AlertRule, AlertTransition, Channel, RuleKind, Silence
from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import record
from tests.conftest import build_app
from tests.positions.helpers import snap

NOW = utcnow().replace(microsecond=0)
WRITES = ("INSERT", "UPDATE", "DELETE")


CLOCK = {"now": NOW}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """Freeze the engine's clock; push() moves it to the newest snapshot it sends."""
    CLOCK["now"] = NOW
    monkeypatch.setattr("app.alerts.engine.utcnow", lambda: CLOCK["now"])


def add_rule(app, **settings) -> int:
    settings = {
        "name": "cap",
        "kind": RuleKind.POSITION_ABOVE,
        "threshold": Decimal(10),
    } | settings
    with app.app_context():
        rule = AlertRule(**settings)
        db.session.add(rule)
        db.session.commit()
        return rule.id


def push(app, *snapshots):
    CLOCK["now"] = max(s.timestamp for s in snapshots)
    with app.app_context():
        record(snapshots)
        db.session.commit()


def at(seconds, **kwargs):
    return snap(at=NOW + timedelta(seconds=seconds), **kwargs)


@contextlib.contextmanager
def statements(app):
    """Collect the SQL statements run inside the block."""
    seen: list[str] = []

    def collect(_conn, _cursor, statement, *_):
        seen.append(statement.lstrip().upper())

    event.listen(db.engine, "before_cursor_execute", collect)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", collect)


def run_pass(app, seconds):
    with app.app_context():
        transitions = evaluate_all(now=NOW + timedelta(seconds=seconds))
        db.session.commit()
        return [(t.account, t.asset, t.from_state, t.to_state) for t in transitions]


def alert_rows(app):
    with app.app_context():
        return db.session.execute(
            db.select(Alert.rule_id, Alert.state, Alert.value, Alert.evaluated_at).order_by(
                Alert.id
            )
        ).all()


def test_pass_that_changes_nothing_writes_nothing(any_app):
    add_rule(any_app)
    add_rule(
        any_app,
        name="move",
        kind=RuleKind.CHANGE_OVER_WINDOW,
        threshold=Decimal(5),
        window_seconds=60,
    )
    push(any_app, at(-120, amount="1"), at(0, amount="11"), at(0, account="quiet", amount="1"))
    before = alert_rows(any_app)
    assert [state for _, state, _, _ in before] == ["firing", "firing"]
    with any_app.app_context(), statements(any_app) as seen:
        assert evaluate_all(now=NOW + timedelta(seconds=30)) == []
        db.session.commit()
    assert [s for s in seen if s.startswith(WRITES)] == []
    assert alert_rows(any_app) == before  # evaluation time and value untouched


def test_silenced_firing_alert_is_not_written_every_pass(app):
    rule_id = add_rule(app)
    with app.app_context():
        rule = db.session.get(AlertRule, rule_id)
        rule.channels.append(
            Channel(name="hook", kind="webhook", target="http://127.0.0.1:9/hook")
        )
        db.session.add(
            Silence(starts_at=NOW, ends_at=NOW + timedelta(hours=1), comment="maintenance")
        )
        db.session.commit()
    push(app, at(0, amount="11"))
    with app.app_context(), statements(app) as seen:
        evaluate_all(now=NOW + timedelta(seconds=30))
        db.session.commit()
    assert [s for s in seen if s.startswith(WRITES)] == []
    # Once the silence is over, the pass announces it: a write, and only then.
    with app.app_context(), statements(app) as seen:
        evaluate_all(now=NOW + timedelta(hours=2))
        db.session.commit()
    assert any(s.startswith("INSERT INTO NOTIFICATION") for s in seen)


def test_pass_statement_count_does_not_grow_with_rules_or_series(any_app):
    def pass_statements():
        with any_app.app_context(), statements(any_app) as seen:
            evaluate_all(now=NOW + timedelta(seconds=30))
            db.session.commit()
        return len(seen)

    for n in range(3):
        add_rule(any_app, name=f"move {n}", kind=RuleKind.CHANGE_OVER_WINDOW, window_seconds=60)
    push(any_app, *(at(s, asset=a, amount="1") for a in ("A", "B") for s in (-90, 0)))
    few = pass_statements()
    for n in range(20):
        asset = f"X{n}"
        add_rule(any_app, name=f"cap {n}", asset=asset)
        add_rule(
            any_app,
            name=f"more {n}",
            kind=RuleKind.CHANGE_OVER_WINDOW,
            asset=asset,
            window_seconds=n + 1,
        )
    push(any_app, *(at(s, asset=f"X{n}", amount="1") for n in range(20) for s in (-90, 0)))
    assert pass_statements() == few


def test_pass_evaluates_again_under_the_lock(any_app, monkeypatch):
    add_rule(any_app, pending_seconds=60)
    push(any_app, at(0, amount="11"), at(0, asset="ETH", amount="1"))
    with any_app.app_context():
        stale = plan_pass(NOW + timedelta(seconds=61))
    assert list(stale.values()) == [{("main", "BTC")}]
    # The data moves between the scan and the lock: BTC clears, ETH breaks.
    push(any_app, at(61, amount="9"), at(61, asset="ETH", amount="12"))
    stale[next(iter(stale))].add(("main", "ETH"))
    monkeypatch.setattr(engine, "plan_pass", lambda now: stale)
    assert run_pass(any_app, 62) == []  # ETH went pending at ingest: 1 s is too early
    with any_app.app_context():
        states = dict(db.session.execute(db.select(Alert.asset, Alert.state)).all())
        history = db.session.execute(
            db.select(AlertTransition.from_state, AlertTransition.to_state)
        ).all()
    assert states == {"BTC": "normal", "ETH": "pending"}
    assert ("pending", "firing") not in history


def test_pass_with_nothing_to_change_does_not_wait_for_sqlite_write_lock(sqlite_url):
    app = build_app(sqlite_url, SQLITE_BUSY_TIMEOUT_MS=50)
    with app.app_context():
        db.create_all()
    add_rule(app, pending_seconds=60)
    push(app, at(0, amount="11"))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # an ingest in the middle of its transaction
        assert run_pass(app, 30) == []
        # A pass that must write still takes the lock, and so waits for it.
        with pytest.raises(OperationalError, match="locked"):
            run_pass(app, 61)
    finally:
        holder.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    assert run_pass(app, 61) == [("main", "BTC", "pending", "firing")]
