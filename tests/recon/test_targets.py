"""On PostgreSQL the database decides whether an ingested batch has anything to evaluate:
it must skip a batch only where compare.py reads every asset matched."""

from datetime import timedelta
from decimal import Decimal

import pytest

from app.db_types import EXACT
from app.extensions import db
from app.positions.ingest import record
from app.recon.compare import compare_all
from app.recon.define import AssetSpec
from app.recon.evaluate import _reading
from app.recon.models import ReconAsset, ReconState
from app.recon.targets import anything_to_evaluate, changed_select, read_targets
from tests.conftest import _truncate_all, build_app
from tests.recon.helpers import at, book, define, venue

D = Decimal

# Digits past 28 where a boundary is (Python's default context would round there).
LONG = D("1234567890.123456789012345678901234567")
# 0.1 % of LONG, added exactly.
AT_PERCENT = EXACT.add(LONG, EXACT.divide(LONG, 1000))

CASES = {
    "equal": dict(left="5", right="5", needs=False),
    "1E-30 apart, no tolerance": dict(left="5", right="5.000000000000000000000000000001"),
    "at the absolute tolerance": dict(left="5", right="5.01", abs_tolerance="0.01", needs=False),
    "1E-30 past the absolute tolerance": dict(
        left="5", right="5.010000000000000000000000000001", abs_tolerance="0.01"
    ),
    "at the relative tolerance": dict(
        left=str(LONG), right=str(AT_PERCENT), rel_tolerance_percent="0.1", needs=False
    ),
    "1E-36 past the relative tolerance": dict(
        left=str(LONG), right=str(EXACT.add(AT_PERCENT, D("1E-36"))), rel_tolerance_percent="0.1"
    ),
    "below zero, at the relative tolerance": dict(
        left="-1000", right="-1001", rel_tolerance_percent="0.1", needs=False
    ),
    "contracts times the multiplier": dict(
        left="1.2345",
        right="12345",
        asset=AssetSpec("XBT", "BTC", multiplier=D("0.0001")),
        needs=False,
    ),
    "contracts one past": dict(
        left="1.2345", right="12346", asset=AssetSpec("XBT", "BTC", multiplier=D("0.0001"))
    ),
    "an asset's tolerance over the reconciliation's": dict(
        left="5",
        right="5.9",
        abs_tolerance="0",
        asset=AssetSpec("XBT", "BTC", abs_tolerance=D(1)),
        needs=False,
    ),
    "the reconciliation's percent beside an asset's absolute tolerance": dict(
        left="1000",
        right="1009",
        rel_tolerance_percent="1",
        asset=AssetSpec("XBT", "BTC", abs_tolerance=D("0.5")),
        needs=False,
    ),
    "a side exactly its max age old": dict(left="5", right="5", age=600, needs=False),
    "the book a microsecond past its max age": dict(
        left="5", right="5", age=600.000001, right_max_age_seconds=6000
    ),
    "the venue a microsecond past its max age": dict(
        left="5", right="5", age=600.000001, left_max_age_seconds=6000
    ),
    "the venue not reported": dict(left="5", right=None),
    "matching again, stored as a break": dict(left="5", right="5", stored=ReconState.BREAK),
}


@pytest.fixture
def pg_app(postgres_url):
    app = build_app(postgres_url)
    with app.app_context():
        _truncate_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("case", CASES)
def test_a_batch_is_skipped_only_where_every_asset_reads_matched(pg_app, case):
    spec = dict(CASES[case])
    left, right = spec.pop("left"), spec.pop("right")
    expected = spec.pop("needs", True)
    # Stored as matched unless told: what the batch reads is then all that decides.
    age, stored = spec.pop("age", 0), spec.pop("stored", ReconState.MATCHED)
    asset = spec.pop("asset", AssetSpec("XBT", "BTC"))
    ages = {
        "left_max_age_seconds": spec.pop("left_max_age_seconds", 600),
        "right_max_age_seconds": spec.pop("right_max_age_seconds", 600),
    }
    settings = {k: D(v) for k, v in spec.items()}
    rows = [book(amount=left)] + ([] if right is None else [venue(amount=right)])
    with pg_app.app_context():
        record(rows)
        db.session.commit()
    recon_id = define(pg_app, asset, **ages, **settings)
    now = at() + timedelta(seconds=age)
    with pg_app.app_context():
        db.session.execute(db.update(ReconAsset).values(state=stored))
        changed = {("main", "XBT"), ("main@binance", "BTC")}
        params = {"reconciliations": [recon_id], "assets": ["BTC", "XBT"]}
        (target,), latest = read_targets(changed_select("postgresql"), params)
        reading = _reading(compare_all([target.terms], now, latest)[target.terms.asset_id])
        by_python = not (target.stored_state == reading == ReconState.MATCHED)
        assert by_python is expected
        assert anything_to_evaluate(changed, params, now) is expected
        db.session.rollback()


def test_a_break_on_an_asset_the_batch_did_not_touch_does_not_count(pg_app):
    with pg_app.app_context():
        record([book("XBT", "5"), venue("BTC", "5"), book("ETH", "1"), venue("ETH", "2")])
        db.session.commit()
    recon_id = define(pg_app, AssetSpec("XBT", "BTC"), AssetSpec("ETH", "ETH"))
    with pg_app.app_context():
        states = dict(db.session.execute(db.select(ReconAsset.left_asset, ReconAsset.state)).all())
        assert states == {"XBT": ReconState.MATCHED, "ETH": ReconState.BREAK}
        # ETH is named in the batch, but on an account of no side of it.
        changed = {("main", "XBT"), ("main@binance", "BTC"), ("other", "ETH")}
        params = {"reconciliations": [recon_id], "assets": ["BTC", "ETH", "XBT"]}
        assert anything_to_evaluate(changed, params, at()) is False
        changed.add(("main@binance", "ETH"))
        assert anything_to_evaluate(changed, params, at()) is True
