"""Reconciliation state through the alert engine: at ingest and in the worker's pass."""

from decimal import Decimal

import pytest

from app.alerts.engine import evaluate_all
from app.alerts.models import Alert, AlertState, AlertTransition
from app.extensions import db
from app.recon import queries
from app.recon.define import AssetSpec
from app.recon.models import ReconState, ReconTransition
from tests.recon.helpers import at, book, define, ingest, state, venue

pytestmark = pytest.mark.usefixtures("frozen_clock")


@pytest.fixture
def app(any_app):
    """Every test here on SQLite and on PostgreSQL, where the database itself tells at
    ingest whether a batch has anything to evaluate (app.recon.targets)."""
    return any_app


def alert_state(app, asset="XBT"):
    with app.app_context():
        return db.session.execute(
            db.select(Alert.state).where(Alert.asset == asset)
        ).scalar_one_or_none()


def test_defined_over_matching_sides_it_is_matched_at_once_with_no_alert(app):
    ingest(app, book(amount="5"), venue(amount="5"))
    define(app)
    assert state(app) == ReconState.MATCHED
    assert alert_state(app) is None


def test_defined_before_any_data_it_is_unknown_until_both_sides_report(app):
    define(app)
    assert state(app) == ReconState.UNKNOWN
    assert alert_state(app) == AlertState.FIRING
    ingest(app, book(amount="5"), venue(amount="5"))
    assert state(app) == ReconState.MATCHED
    assert alert_state(app) == AlertState.RESOLVED


def test_a_break_without_grace_fires_inside_the_ingest_that_reveals_it(app):
    ingest(app, book(amount="5"), venue(amount="5"))
    define(app)
    result = ingest(app, venue(amount="7.5", seconds=10), book(amount="5", seconds=10))
    assert [(t.from_state, t.to_state) for t in result.transitions] == [
        (AlertState.NORMAL, AlertState.FIRING)
    ]
    assert state(app) == ReconState.BREAK
    assert alert_state(app) == AlertState.FIRING


def test_a_fill_between_two_snapshots_is_not_a_break(app):
    define(app)
    ingest(app, book(amount="5"), venue(amount="5"))
    # The book fills 2.5 after the venue's last snapshot: as of the venue's moment the
    # book still held 5, so the two agree until the venue reports again.
    ingest(app, book(amount="7.5", seconds=30))
    assert state(app) == ReconState.MATCHED
    (row,) = _rows(app)
    assert row.as_of == at(0)
    assert (row.left_amount, row.right_amount) == (Decimal("5"), Decimal("5"))
    # The venue reports the fill: still matched, now as of the venue's moment.
    ingest(app, venue(amount="7.5", seconds=40))
    assert state(app) == ReconState.MATCHED
    (row,) = _rows(app)
    assert row.as_of == at(40)
    # The venue then reports something else: a break.
    ingest(app, venue(amount="7", seconds=50))
    assert state(app) == ReconState.BREAK


def test_a_fill_the_venue_reports_first_is_not_a_break_either(app):
    define(app)
    ingest(app, book(amount="5"), venue(amount="5"))
    ingest(app, venue(amount="7.5", seconds=30))
    assert state(app) == ReconState.MATCHED
    ingest(app, book(amount="7.5", seconds=40))
    assert state(app) == ReconState.MATCHED


def test_a_break_that_shows_at_both_moments_is_a_break(app):
    define(app)
    ingest(app, book(amount="5"), venue(amount="5"))
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=20))
    # Until the book reports again this could be a fill the venue reported first.
    assert state(app) == ReconState.MATCHED
    ingest(app, book(amount="5", seconds=30))
    assert state(app) == ReconState.BREAK
    (row,) = _rows(app)
    assert (row.as_of, row.difference) == (at(30), Decimal("2.5"))


def _rows(app):
    with app.app_context():
        return queries.recon_rows()


def test_mapping_and_multiplier_compare_contracts_with_coins(app):
    define(app, AssetSpec("XBT", "XBTUSD", multiplier=Decimal("0.0001")))
    ingest(
        app,
        book("XBT", "1.2345"),
        venue("XBTUSD", "12345"),
    )
    assert state(app) == ReconState.MATCHED
    ingest(app, venue("XBTUSD", "12346", seconds=1), book("XBT", "1.2345", seconds=1))
    assert state(app) == ReconState.BREAK
    (row,) = _rows(app)
    assert row.difference == Decimal("0.0001")
    assert row.right_compared == Decimal("1.2346")


def test_a_break_from_the_book_side_fires_too(app):
    define(app)
    ingest(app, venue(amount="5"), book(amount="5"))
    ingest(app, book(amount="4", seconds=5), venue(amount="5", seconds=5))
    assert alert_state(app) == AlertState.FIRING


def test_a_missing_side_is_unknown_and_fires(app):
    define(app)
    ingest(app, book(amount="5"))
    assert state(app) == ReconState.UNKNOWN
    assert alert_state(app) == AlertState.FIRING
    with app.app_context():
        assert db.session.execute(db.select(Alert.value)).scalar_one() is None


def test_an_unknown_side_fires_at_once_the_grace_is_for_differences(app):
    define(app, grace_seconds=600, right_max_age_seconds=60)
    ingest(app, book(amount="5"))
    assert (state(app), alert_state(app)) == (ReconState.UNKNOWN, AlertState.FIRING)
    ingest(app, venue(amount="5", seconds=5), book(amount="5", seconds=5))
    assert (state(app), alert_state(app)) == (ReconState.MATCHED, AlertState.RESOLVED)
    # A difference waits its grace ...
    ingest(app, venue(amount="6", seconds=10), book(amount="5", seconds=10))
    assert (state(app), alert_state(app)) == (ReconState.PENDING, AlertState.PENDING)
    # ... and a side going quiet meanwhile does not: its max age was its grace.
    with app.app_context():
        evaluate_all(now=at(80))
    assert (state(app), alert_state(app)) == (ReconState.UNKNOWN, AlertState.FIRING)


def test_a_silent_venue_turns_unknown_in_the_worker_pass_never_matched(app):
    define(app, right_max_age_seconds=60)
    ingest(app, book(amount="5"), venue(amount="5"))
    assert state(app) == ReconState.MATCHED
    # The book keeps reporting; the venue stops.
    ingest(app, book(amount="5", seconds=100))
    with app.app_context():
        evaluate_all(now=at(200))
    assert state(app) == ReconState.UNKNOWN
    assert alert_state(app) == AlertState.FIRING
    # The venue is back and agrees: matched, the alert resolves.
    ingest(app, venue(amount="5", seconds=205), book(amount="5", seconds=205), now=at(210))
    assert state(app) == ReconState.MATCHED
    assert alert_state(app) == AlertState.RESOLVED


def test_grace_period_holds_a_break_pending_until_it_has_lasted(app):
    ingest(app, book(amount="5"), venue(amount="5"))
    define(app, grace_seconds=60)
    ingest(app, book(amount="5", seconds=10), venue(amount="6", seconds=10))
    assert state(app) == ReconState.PENDING
    assert alert_state(app) == AlertState.PENDING
    with app.app_context():
        evaluate_all(now=at(50))
    assert state(app) == ReconState.PENDING
    with app.app_context():
        evaluate_all(now=at(71))
    assert state(app) == ReconState.BREAK
    assert alert_state(app) == AlertState.FIRING


def test_a_difference_that_clears_inside_the_grace_period_never_fires(app):
    ingest(app, book(amount="5", seconds=-10), venue(amount="5", seconds=-10))
    define(app, grace_seconds=60)
    ingest(app, book(amount="5"), venue(amount="6"), now=at(10))
    # The book catches up with what the venue reported: matched again, inside the grace.
    ingest(app, book(amount="6", seconds=20), now=at(30))
    assert state(app) == ReconState.MATCHED
    with app.app_context():
        evaluate_all(now=at(200))
        states = db.session.execute(db.select(AlertTransition.to_state)).scalars().all()
    assert AlertState.FIRING not in states


def test_transitions_keep_both_sides_values_and_the_difference(app):
    define(app)
    ingest(app, book(amount="5"), venue(amount="5"))
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=10))
    ingest(app, book(amount="7.5", seconds=20), venue(amount="7.5", seconds=20))
    with app.app_context():
        history = [
            (t.from_state, t.to_state, t.left_amount, t.right_amount, t.difference, t.as_of)
            for t in db.session.execute(
                db.select(ReconTransition).order_by(ReconTransition.id)
            ).scalars()
        ]
    assert history == [
        (ReconState.UNKNOWN, ReconState.MATCHED, Decimal("5"), Decimal("5"), Decimal("0"), at(0)),
        (
            ReconState.MATCHED,
            ReconState.BREAK,
            Decimal("5"),
            Decimal("7.5"),
            Decimal("2.5"),
            at(10),
        ),
        (
            ReconState.BREAK,
            ReconState.MATCHED,
            Decimal("7.5"),
            Decimal("7.5"),
            Decimal("0"),
            at(20),
        ),
    ]


def test_tolerance_keeps_a_small_difference_matched(app):
    define(app, abs_tolerance=Decimal("0.01"), rel_tolerance_percent=Decimal("0.1"))
    ingest(app, book(amount="1000"), venue(amount="1000.9"))
    assert state(app) == ReconState.MATCHED
    ingest(app, book(amount="1000", seconds=1), venue(amount="1001.1", seconds=1))
    assert state(app) == ReconState.BREAK


def test_an_asset_tolerance_overrides_the_default(app):
    define(app, AssetSpec("XBT", "BTC", abs_tolerance=Decimal("1")), abs_tolerance=Decimal("0"))
    ingest(app, book(amount="5"), venue(amount="5.9"))
    assert state(app) == ReconState.MATCHED


def test_decimals_stay_exact_on_sqlite_and_postgresql(any_app):
    define(any_app)
    ingest(
        any_app,
        book(amount="0.123456789012345678901234567890"),
        venue(amount="0.123456789012345678901234567891"),
    )
    assert state(any_app) == ReconState.BREAK
    with any_app.app_context():
        (row,) = queries.recon_rows()
        assert row.difference == Decimal("1E-30")
        assert row.left_amount == Decimal("0.123456789012345678901234567890")
        change = db.session.execute(db.select(ReconTransition)).scalars().all()[-1]
        assert change.difference == Decimal("1E-30")
        assert db.session.execute(db.select(Alert.value)).scalar_one() == Decimal("1E-30")


@pytest.mark.parametrize("side", ["book", "venue"])
def test_a_disabled_reconciliation_is_not_evaluated(app, side):
    define(app, enabled=False)
    ingest(app, book(amount="5"), venue(amount="9"))
    assert state(app) == ReconState.UNKNOWN
    assert alert_state(app) is None


def test_a_worker_pass_with_nothing_changing_writes_no_transition(app):
    define(app)
    ingest(app, book(amount="5"), venue(amount="5"))
    with app.app_context():
        before = db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()
        evaluate_all(now=at(30))
        after = db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()
    assert before == after == 1


def test_a_break_whose_venue_goes_quiet_turns_unknown_and_keeps_firing(app):
    ingest(app, book(amount="5"), venue(amount="5"))
    define(app, right_max_age_seconds=60)
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=10))
    assert state(app) == ReconState.BREAK
    ingest(app, book(amount="5", seconds=50))
    with app.app_context():
        evaluate_all(now=at(100))
        last = db.session.execute(
            db.select(ReconTransition).order_by(ReconTransition.id.desc()).limit(1)
        ).scalar_one()
        assert (last.from_state, last.to_state) == (ReconState.BREAK, ReconState.UNKNOWN)
        # Both sides' values as they stood, though the venue's is too old to trust.
        assert (last.left_amount, last.right_amount) == (Decimal("5"), Decimal("7.5"))
    assert alert_state(app) == AlertState.FIRING
    with app.app_context():
        # A second pass with nothing new writes nothing.
        before = db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()
        evaluate_all(now=at(110))
        after = db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()
    assert before == after
