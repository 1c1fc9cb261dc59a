"""Previewing a reconciliation on stored history, read-only, with the live state machine."""

from datetime import timedelta
from decimal import Decimal

import pytest

from app.extensions import db
from app.recon.define import AssetSpec, ReconSpec
from app.recon.models import ReconState, ReconTransition
from app.recon.preview import preview_reconciliation, preview_spec
from app.recon.queries import reconciliation_by_name
from tests.recon.helpers import at, book, define, ingest, venue

pytestmark = pytest.mark.usefixtures("frozen_clock")


def history(app):
    """A break of 40 s inside a 60 s grace, then one of 90 s, then agreement again."""
    ingest(
        app,
        book(amount="5"),
        venue(amount="5"),
        venue(amount="6", seconds=10),
        book(amount="5", seconds=20),
        venue(amount="5", seconds=50),
        book(amount="5", seconds=60),
        venue(amount="7", seconds=70),
        book(amount="5", seconds=80),
        book(amount="5", seconds=150),
        venue(amount="5", seconds=160),
        book(amount="5", seconds=170),
    )


def test_preview_replays_the_grace_period_and_both_moments(app):
    history(app)
    define(app, grace_seconds=60, now=at(200))
    with app.app_context():
        recon = reconciliation_by_name("binance")
        before = db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()
        changes = preview_reconciliation(recon, at(-1), at(200))
        after = db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()
    assert before == after  # nothing written
    assert [(c.at, c.to_state) for c in changes] == [
        (at(0), ReconState.MATCHED),
        # The venue's 6 shows at both moments once the book reports at 20 s.
        (at(20), ReconState.PENDING),
        (at(50), ReconState.MATCHED),
        (at(80), ReconState.PENDING),
        # The grace runs out at 140 s, between snapshots: the worker's moment, replayed.
        (at(140), ReconState.BREAK),
        (at(160), ReconState.MATCHED),
    ]
    assert changes[4].comparison.difference == Decimal("2")


def test_flask_recon_preview_prints_the_changes(app):
    history(app)
    define(app, grace_seconds=60, now=at(200))
    result = app.test_cli_runner().invoke(args=["recon", "preview", "binance", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "XBT: pending -> break, book 5 vs venue 7, difference 2" in result.output
    assert "6 change(s) of state, 1 break(s), over 1 day(s)." in result.output


def test_preview_replays_a_side_going_unknown_between_snapshots(app):
    ingest(app, book(amount="5"), venue(amount="5"), book(amount="5", seconds=100))
    define(app, left_max_age_seconds=300, right_max_age_seconds=30, now=at(200))
    with app.app_context():
        changes = preview_reconciliation(reconciliation_by_name("binance"), at(-1), at(200))
    assert [(c.at, c.to_state) for c in changes][:2] == [
        (at(0), ReconState.MATCHED),
        # The venue's last report is older than its 30 s once 30 s have passed.
        (at(30) + timedelta(microseconds=1), ReconState.UNKNOWN),
    ]
    assert "main@binance has not reported" in changes[1].comparison.unknown_reason


def test_preview_of_an_unsaved_definition_uses_its_typed_tolerance(app):
    history(app)
    spec = ReconSpec(
        name="typed",
        left_account="main",
        right_account="main@binance",
        assets=(AssetSpec("XBT", "BTC", abs_tolerance=Decimal("1.5")),),
        grace_seconds=0,
    )
    with app.app_context():
        changes = preview_spec(spec, at(-1), at(200))
        assert db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one() == 0
    # Only the venue's 7 (2 beyond 5) is beyond 1.5; without grace it breaks at once.
    assert [(c.at, c.to_state) for c in changes] == [
        (at(0), ReconState.MATCHED),
        (at(80), ReconState.BREAK),
        (at(160), ReconState.MATCHED),
    ]
