"""Value over time: amount x price carried forward per series, per account and for the desk."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from app.db_types import utcnow
from app.positions.buckets import epoch_seconds
from app.positions.holdings import held_at
from app.positions.value import RANGES, grid, value_figures, value_over_time
from tests.conftest import ParsedPage
from tests.positions.helpers import T0, snap, store
from tests.positions.test_rollup import catch_up

NOW = T0 + timedelta(hours=24)
D = Decimal


def ago(**delta):
    return NOW - timedelta(**delta)


@pytest.fixture
def desk(any_app):
    """Two accounts; a price missing from the latest ETH snapshot; hedge starts 2 h ago."""
    store(
        any_app,
        [
            snap("main", "BTC", at=ago(hours=25), amount="2", price="100"),
            snap("main", "BTC", at=ago(minutes=30), amount="3", price="110.05"),
            snap("main", "ETH", at=ago(hours=26), amount="10", price="5"),
            snap("main", "ETH", at=ago(minutes=90), amount="10", price=None),
            snap("hedge", "BTC", at=ago(hours=2), amount="-1", price="100"),
            snap("hedge", "SOL", at=ago(minutes=10), amount="4", price="25"),
        ],
    )


def test_grid_runs_from_the_start_of_the_range_to_now_a_step_apart():
    moments = grid(NOW, timedelta(hours=1), timedelta(minutes=15))
    assert moments == [ago(minutes=m) for m in (60, 45, 30, 15, 0)]
    assert {key: len(grid(NOW, *RANGES[key])) for key in RANGES} == {
        "1h": 61,
        "24h": 97,
        "7d": 169,
        "30d": 181,
    }


@pytest.mark.parametrize("folded", ["none", "some", "all"])
def test_each_lookup_finds_the_latest_snapshot_at_or_before_its_moment(any_app, folded):
    """Against a brute force: snapshots on a moment, a microsecond either side, gaps of
    several steps, series that start just after the first moment and half way, one
    silent since long before the range (a year back, another partition on PostgreSQL),
    one whose only snapshot before the range waits to be folded, and moments off the
    grid; with none, some or all of them in the rollups."""
    rng = random.Random(7)
    step = timedelta(minutes=15)
    start, count = NOW - 40 * step, 41
    moments = [start + k * step for k in range(count)]
    extra = [NOW - timedelta(minutes=7), NOW - timedelta(hours=30)]
    edges = [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)]
    times = {
        ("main", "BTC"): [start - timedelta(hours=40), *(m + rng.choice(edges) for m in moments)],
        ("main", "ETH"): [start + 3 * step, start + 3 * step + timedelta(microseconds=1)],
        ("main", "SOL"): [start + timedelta(microseconds=1), start + 5 * step],
        ("hedge", "BTC"): [start - timedelta(days=365), start - timedelta(days=300)],
        # Silent for ten days before the range, then back in it.
        ("hedge", "ETH"): [start - timedelta(days=10), start + 20 * step],
        ("hedge", "SOL"): [
            start + 17 * step + timedelta(seconds=rng.randrange(900)) for _ in range(9)
        ],
        ("arb", "BTC"): [start + k * step for k in range(0, count, 6)]
        + [NOW - timedelta(hours=29)],
    }
    snapshots = [
        snap(
            account,
            asset,
            at=at,
            amount=str(rng.randrange(-50, 50)),
            price=rng.choice(["2.5", None]),
        )
        for (account, asset), moments_of_series in times.items()
        for at in sorted(set(moments_of_series))
    ]
    store(any_app, snapshots)
    if folded != "none":
        catch_up(any_app, max_rows=None if folded == "all" else len(snapshots) // 2)
    # Backfilled after the fold: the series' only snapshot before the range is not in
    # the rollups yet.
    late = [
        snap("desk", "BTC", at=start - timedelta(days=3), amount="7", price="3"),
        snap("desk", "BTC", at=start + 9 * step, amount="8", price="3"),
    ]
    store(any_app, late)
    snapshots += late

    def brute_force(every_moment):
        expected = {}
        for moment_index, moment in enumerate(every_moment):
            for s in snapshots:
                key = (s.account, s.asset)
                earlier = [
                    t for t in snapshots if (t.account, t.asset) == key and t.timestamp <= moment
                ]
                if earlier:
                    last = max(earlier, key=lambda t: t.timestamp)
                    found = expected.setdefault(key, [None] * len(every_moment))
                    found[moment_index] = (last.amount, last.price)
        return expected

    with any_app.app_context():
        assert held_at(start, step, count, extra) == brute_force([*moments, *extra])
        # As the page's figures ask: no grid, a few moments each looked up on its own.
        few = [NOW, NOW - timedelta(hours=1), start + 17 * step, start, *extra]
        assert held_at(few[0], step, 1, few[1:]) == brute_force(few)


def test_value_carries_each_series_forward_and_skips_a_missing_price(any_app, desk):
    with any_app.app_context():
        report = value_over_time(NOW, "1h")
    assert report.moments[0] == ago(hours=1) and report.moments[-1] == NOW
    main, hedge = report.accounts["main"], report.accounts["hedge"]
    # An hour ago: main's BTC from 25 h ago (2 x 100); its ETH's latest has no price.
    assert main[0] == D("200")
    assert hedge[0] == D("-100")
    assert report.desk[0] == D("100")
    # The BTC snapshot 30 min ago counts from its own moment on, not a minute before.
    assert main[29] == D("200") and main[30] == D("330.15")
    # hedge's SOL from 10 min ago: 4 x 25 = 100 beside the short BTC's -100.
    assert hedge[49] == D("-100") and hedge[50] == D("0")
    assert (main[-1], hedge[-1], report.desk[-1]) == (D("330.15"), D("0"), D("330.15"))
    assert report.unpriced == [("main", "ETH")]


def test_changes_over_one_hour_a_day_and_the_range(any_app, desk):
    with any_app.app_context():
        report = value_figures(NOW, "1h")
    # A day ago: main held BTC 2 x 100 and ETH 10 x 5 (priced then); hedge held nothing.
    assert report.changes == {
        "": {"1h": D("230.15"), "24h": D("80.15"), "range": D("230.15")},
        "main": {"1h": D("130.15"), "24h": D("80.15"), "range": D("130.15")},
        "hedge": {"1h": D("100"), "24h": None, "range": D("100")},
    }
    assert [(name, value) for name, value, _ in report.figures()] == [
        ("hedge", D("0")),
        ("main", D("330.15")),
        ("", D("330.15")),
    ]
    assert report.unpriced == [("main", "ETH")]


@pytest.mark.parametrize("range_key", list(RANGES))
def test_the_figures_agree_with_the_grid_on_every_range(any_app, desk, range_key):
    """The page's figures (four lookups a series) are the chart's grid at its ends, and
    the 1 h and 1 day changes are the same whatever the range."""
    start = NOW - RANGES[range_key][0]
    micro = timedelta(microseconds=1)
    # arb: 2 x 10 held from the range's first moment exactly, 5 x 10 a microsecond later.
    store(
        any_app,
        [
            snap("arb", "ETH", at=start - micro, amount="1", price="10"),
            snap("arb", "ETH", at=start, amount="2", price="10"),
            snap("arb", "ETH", at=start + micro, amount="5", price="10"),
        ],
    )
    with any_app.app_context():
        figures = value_figures(NOW, range_key)
        chart = value_over_time(NOW, range_key)
    assert chart.moments[-1] == NOW
    assert (figures.changes["main"]["1h"], figures.changes["main"]["24h"]) == (
        D("130.15"),
        D("80.15"),
    )
    assert figures.changes["hedge"]["24h"] is None
    assert figures.changes["arb"]["range"] == D("30")
    for name, values in [("", chart.desk), *chart.accounts.items()]:
        assert figures.now[name] == values[-1]
        then = values[0]
        expected = None if then is None or values[-1] is None else values[-1] - then
        assert figures.changes[name]["range"] == expected
    assert figures.unpriced == chart.unpriced


def test_a_week_range_uses_hourly_steps_and_has_no_change_over_the_range(any_app, desk):
    with any_app.app_context():
        chart = value_over_time(NOW, "7d")
        figures = value_figures(NOW, "7d")
    assert chart.moments[-2] == ago(hours=1)
    # Before any snapshot: nothing held, no value (not zero).
    assert chart.desk[0] is None and chart.accounts["main"][0] is None
    assert figures.changes[""]["1h"] == D("230.15")
    assert figures.changes[""]["range"] is None


def test_value_series_json_carries_exact_decimal_texts(any_app, viewer_client):
    now = utcnow().replace(microsecond=0)
    store(
        any_app,
        [
            snap("main", "BTC", at=now - timedelta(hours=2), amount="0.1", price="0.3"),
            snap("main", "BTC", at=now - timedelta(minutes=20), amount="0.2", price="0.3"),
            snap("ops", "XRP", at=now - timedelta(minutes=5), amount="7", price=None),
        ],
    )
    body = viewer_client.get("/value/series?range=1h").get_json()
    assert body["range"] == "1h"
    assert body["currency"] == "USD"
    assert len(body["times"]) == 61
    assert body["times"][-1] - body["times"][0] == 3600
    assert body["times"][-1] >= epoch_seconds(now)
    assert body["desk"][0] == "0.03" and body["desk"][-1] == "0.06"
    assert body["accounts"] == [
        {"account": "main", "values": body["desk"]},
        {"account": "ops", "values": [None] * 61},
    ]
    assert body["unpriced"] == [{"account": "ops", "asset": "XRP"}]


def test_value_page_labels_itself_honestly_and_counts_positions_without_a_price(
    any_app, viewer_client
):
    now = utcnow()
    store(
        any_app,
        [
            snap("main", "BTC", at=now - timedelta(hours=3), amount="1000", price="2.5"),
            snap("ops", "XRP", at=now - timedelta(minutes=5), amount="7", price=None),
        ],
    )
    response = viewer_client.get("/value?range=7d")
    assert response.status_code == 200
    page = ParsedPage(response.get_data(as_text=True))
    assert page.shows_as_text(
        "Value change of the positions held, marked to the stored prices — not trading PnL."
    )
    assert page.shows_as_text("1 position held now has no price")
    assert page.shows_as_text("2,500.00 USD")
    pressed = [a for a in page.elements("a") if a.get("aria-pressed") == "true"]
    assert [a["href"] for a in pressed] == ["/value?range=7d"]
    assert [s["data-series-url"] for s in page.elements("section")] == ["/value/series?range=7d"]
    assert not any("style" in attrs for _, attrs in page.tags)


def test_value_refuses_an_unknown_range(any_app, viewer_client):
    assert viewer_client.get("/value?range=2y").status_code == 400
    response = viewer_client.get("/value/series?range=2y")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "bad_request",
        "message": "'range' must be one of 1h, 24h, 7d, 30d.",
        "parameter": "range",
    }


def test_value_with_no_positions_shows_no_value(any_app, viewer_client):
    with any_app.app_context():
        report = value_over_time(NOW, "24h")
    assert report.accounts == {} and set(report.desk) == {None}
    assert viewer_client.get("/value").status_code == 200
