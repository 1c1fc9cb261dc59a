"""Previewing a reconciliation on stored history, read-only, with the live state machine."""

from decimal import Decimal

import pytest

from app.extensions import db
from app.recon.models import ReconState, ReconTransition
from app.recon.preview import preview_reconciliation
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
        (at(150), ReconState.BREAK),
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
