"""The reconciliation pages: who may see them, the order, exact amounts, chart and CSV."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from app.recon.define import AssetSpec, ReconSpec, save_reconciliation
from app.recon.models import ReconAsset, Reconciliation, ReconTransition
from tests.conftest import client_as
from tests.positions.helpers import snap, store
from tests.positions.test_pages import cells, exact_cells


def define(app, name="desk", left="main", right="main@venue", assets=(), **settings) -> int:
    """A reconciliation with its assets: each a dict of ReconAsset columns (left_asset first)."""
    with app.app_context():
        recon = Reconciliation(name=name, left_account=left, right_account=right, **settings)
        now = utcnow()
        for values in assets:
            values = {"right_asset": values["left_asset"], "state_since": now, **values}
            recon.assets.append(ReconAsset(**values))
        db.session.add(recon)
        db.session.commit()
        return recon.id


def asset_id(app, recon_id: int, left_asset: str) -> int:
    with app.app_context():
        return db.session.execute(
            db.select(ReconAsset.id).where(
                ReconAsset.reconciliation_id == recon_id, ReconAsset.left_asset == left_asset
            )
        ).scalar_one()


def record_changes(app, recon_asset_id: int, changes) -> None:
    """Store transitions: (minutes ago, from, to, left, right as reported, difference)."""
    now = utcnow()
    with app.app_context():
        for minutes, from_state, to_state, left, right, difference in changes:
            at = now - timedelta(minutes=minutes)
            db.session.add(
                ReconTransition(
                    recon_asset_id=recon_asset_id,
                    from_state=from_state,
                    to_state=to_state,
                    at=at,
                    as_of=at,
                    left_amount=None if left is None else Decimal(left),
                    right_amount=None if right is None else Decimal(right),
                    difference=None if difference is None else Decimal(difference),
                )
            )
        db.session.commit()


def state(name, left, right, difference, minutes_ago=5, **extra) -> dict:
    """ReconAsset values of an asset in state `name`, with both sides' amounts."""
    at = utcnow() - timedelta(minutes=minutes_ago)
    return {
        "state": name,
        "state_since": at,
        "as_of": at,
        "left_amount": None if left is None else Decimal(left),
        "left_at": None if left is None else at,
        "right_amount": None if right is None else Decimal(right),
        "right_at": None if right is None else at,
        "difference": None if difference is None else Decimal(difference),
        "evaluated_at": at,
        **extra,
    }


def save(app, name, left, right, assets, **settings) -> int:
    """Define a reconciliation as the page and the CLI do (it is evaluated at once)."""
    with app.app_context():
        spec = ReconSpec(
            name=name,
            left_account=left,
            right_account=right,
            assets=tuple(AssetSpec(**a) for a in assets),
            **settings,
        )
        recon = save_reconciliation(spec, actor="cli")
        db.session.commit()
        return recon.id


@pytest.fixture
def desk(app):
    """Two reconciliations: a break, an unknown, a pending and two matched assets."""
    now = utcnow().replace(microsecond=0)
    at = now - timedelta(minutes=1)
    store(
        app,
        [
            snap(account="main", asset="BTC", at=at, amount="5"),
            snap(account="main@binance", asset="XBT", at=at, amount="7.5"),
            snap(account="main", asset="ETH", at=at, amount="10"),
            snap(account="main@binance", asset="ETH", at=at, amount="10"),
            snap(account="main", asset="SOL", at=at, amount="100"),
            snap(account="perp", asset="BTC", at=at, amount="1.000000000000000001"),
            snap(account="perp@venue", asset="BTC-PERP", at=at, amount="1000.000000000000001"),
            snap(account="perp", asset="ETH", at=at, amount="2"),
            snap(account="perp@venue", asset="ETH", at=at, amount="2.5"),
        ],
    )
    book = save(
        app,
        "binance",
        "main",
        "main@binance",
        [
            {"left_asset": "ETH"},
            {"left_asset": "BTC", "right_asset": "XBT"},
            {"left_asset": "SOL"},
        ],
        abs_tolerance=Decimal("0.001"),
    )
    save(
        app,
        "futures",
        "perp",
        "perp@venue",
        [
            {
                "left_asset": "BTC",
                "right_asset": "BTC-PERP",
                "multiplier": Decimal("0.001"),
                "abs_tolerance": Decimal("0.0001"),
            },
            {"left_asset": "ETH"},
        ],
        rel_tolerance_percent=Decimal("1"),
        grace_seconds=3600,
    )
    return book


def test_anonymous_is_sent_to_login_from_every_page(app, client, desk):
    for path in (
        "/recon",
        f"/recon/{desk}/BTC",
        f"/recon/{desk}/BTC/series",
        f"/recon/{desk}/BTC/history.csv",
        "/recon/definitions",
        "/recon/definitions/new",
        f"/recon/definitions/{desk}/edit",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"], path


def test_breaks_come_first_then_unknown_then_pending_then_matched(app, desk):
    viewer = client_as(app, Role.VIEWER)
    html = viewer.get("/recon").get_data(as_text=True)
    order = re.findall(r'<tr class="[^"]*" data-recon="([^"]+)" data-state="([^"]+)"', html)
    assert order == [
        ("binance/BTC", "break"),
        ("binance/SOL", "unknown"),
        ("futures/ETH", "pending"),
        ("binance/ETH", "matched"),
        ("futures/BTC", "matched"),
    ]
    counts = re.findall(r'class="recon-count" data-state="(\w+)"[^>]*>(?:<span[^>]*>)?(\d+)', html)
    assert counts == [("break", "1"), ("unknown", "1"), ("pending", "1"), ("matched", "2")]
    # The badge says it in words, not only in colour.
    assert [row[6].split()[0] for row in cells(html, "recon")] == [
        "break",
        "unknown",
        "pending",
        "matched",
        "matched",
    ]


ROW = r'<tr class="[^"]*" data-recon="([^"]+)" data-state="([^"]+)"'


def test_a_state_chosen_lists_only_its_assets_and_keeps_every_count(app, desk):
    viewer = client_as(app, Role.VIEWER)
    html = viewer.get("/recon?state=matched").get_data(as_text=True)
    assert re.findall(ROW, html) == [("binance/ETH", "matched"), ("futures/BTC", "matched")]
    counts = re.findall(r'class="recon-count" data-state="(\w+)"[^>]*>(?:<span[^>]*>)?(\d+)', html)
    assert counts == [("break", "1"), ("unknown", "1"), ("pending", "1"), ("matched", "2")]
    # The live refresh asks for the same choice.
    assert 'hx-get="/recon?state=matched"' in html
    refreshed = viewer.get("/recon?state=break", headers={"HX-Request": "true"})
    assert re.findall(ROW, refreshed.get_data(as_text=True)) == [("binance/BTC", "break")]


def test_an_unknown_state_is_a_bad_request(app, desk):
    response = client_as(app, Role.VIEWER).get("/recon?state=<script>")
    assert response.status_code == 400
    assert "state must be one of break, unknown, pending, matched." in response.get_data(
        as_text=True
    )


def test_a_long_list_shows_its_first_rows_breaks_first_and_says_so(app, desk, monkeypatch):
    monkeypatch.setattr("app.recon.routes.PAGE_ROWS", 2)
    viewer = client_as(app, Role.VIEWER)
    html = viewer.get("/recon").get_data(as_text=True)
    assert re.findall(ROW, html) == [("binance/BTC", "break"), ("binance/SOL", "unknown")]
    assert 'id="recon-more"' in html
    # Every asset still counted.
    assert re.findall(r'data-state="matched"[^>]*>(\d+) matched', html) == ["2"]
    assert 'id="recon-more"' not in viewer.get("/recon?state=matched").get_data(as_text=True)


def test_both_sides_difference_and_percent_are_shown_and_exact_on_hover(app, desk):
    viewer = client_as(app, Role.VIEWER)
    html = viewer.get("/recon").get_data(as_text=True)
    btc = exact_cells(html, "recon")[0]
    # Left 5, the venue's 7.5 XBT mapped onto BTC, 2.5 apart: 50 % of the left amount.
    assert btc[2:5] == ["5", "7.5", "2.5"]
    assert "50.0 %" in cells(html, "recon")[0][5]
    # The multiplier is applied exactly: 1000.000000000000001 contracts x 0.001.
    futures_btc = exact_cells(html, "recon")[4]
    assert [Decimal(v) for v in futures_btc[2:4]] == [Decimal("1.000000000000000001")] * 2
    assert f'href="/recon/{desk}/BTC"' in html
    assert "↔ XBT" in html and "\N{MULTIPLICATION SIGN} 0.001" in html
    # The venue's side of the unknown asset is missing, and says so.
    assert "missing" in cells(html, "recon")[1][3]


def test_live_refresh_gets_the_table_alone(app, desk):
    viewer = client_as(app, Role.VIEWER)
    html = viewer.get("/recon", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert html.lstrip().startswith('<div id="recon-live" data-live')
    assert "<nav" not in html


def test_empty_page_says_what_a_reconciliation_is(app):
    admin = client_as(app, Role.ADMIN)
    html = admin.get("/recon").get_data(as_text=True)
    assert 'id="recon-empty"' in html
    assert 'href="/recon/definitions/new"' in html
    viewer = client_as(app, Role.VIEWER)
    assert 'href="/recon/definitions/new"' not in viewer.get("/recon").get_data(as_text=True)


def test_nav_links_to_the_reconciliation_page(app):
    viewer = client_as(app, Role.VIEWER)
    assert 'href="/recon">Recon' in viewer.get("/").get_data(as_text=True)


def test_detail_shows_both_sides_links_and_the_break_history(app, desk):
    record_changes(
        app,
        asset_id(app, desk, "BTC"),
        [
            (60, "unknown", "matched", "5", "5", "0"),
            (30, "matched", "break", "5", "7.25", "2.25"),
            (20, "break", "matched", "5", "5", "0"),
            (3, "matched", "break", "5", "7.5", "2.5"),
        ],
    )
    viewer = client_as(app, Role.VIEWER)
    response = viewer.get(f"/recon/{desk}/BTC")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>BTC in binance</h1>" in html
    assert 'href="/positions/BTC?account=main"' in html
    assert 'href="/positions/XBT?account=main@binance"' in html
    assert f'href="/recon/{desk}/BTC/history.csv"' in html
    assert f'data-series-url="/recon/{desk}/BTC/series"' in html
    history = exact_cells(html, "recon-history")
    # Newest first: the break found when it was defined, then the earlier changes.
    assert [row[2:] for row in history] == [
        ["5", "7.5", "2.5"],
        ["5", "7.5", "2.5"],
        ["5", "5", "0"],
        ["5", "7.25", "2.25"],
        ["5", "5", "0"],
    ]
    assert "±0.001 BTC" in html
    # Each break opens the chart on a window around it (wall time, here UTC).
    zooms = re.findall(r'href="/recon/\d+/BTC\?from=([^"&]+)&amp;to=([^"&]+)"', html)
    # The latest break above the chart, and each of the three in the table.
    assert len(zooms) == 4 and zooms[0] == zooms[1]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d\+\d\d:\d\d", f) for pair in zooms for f in pair)
    # The break is an alert like any other, and its page opens from here.
    alert = re.search(r'href="(/alerts/\d+)" data-testid="recon-alert"', html)
    assert alert
    alert_page = viewer.get(alert.group(1)).get_data(as_text=True)
    # And the alert's page leads back here, to both sides.
    back = re.search(r'href="([^"]+)" data-testid="recon-link"', alert_page)
    assert back
    assert viewer.get(back.group(1)).headers["Location"] == f"/recon/{desk}/BTC"


def test_unknown_reconciliation_or_asset_is_404(app, desk):
    viewer = client_as(app, Role.VIEWER)
    assert viewer.get("/recon/rule/999/BTC").status_code == 404
    assert viewer.get(f"/recon/{desk}/DOGE").status_code == 404
    assert viewer.get("/recon/999/BTC").status_code == 404
    assert viewer.get(f"/recon/{desk}/DOGE/series").status_code == 404
    assert viewer.get(f"/recon/{desk}/DOGE/history.csv").status_code == 404


def test_csv_has_every_transition_with_exact_decimals(any_app):
    futures = define(
        any_app,
        "contracts",
        "book",
        "venue",
        assets=[
            {
                "left_asset": "BTC",
                "right_asset": "XBTUSD",
                "multiplier": Decimal("0.0001"),
                **state("break", "0.30000000000000004", "3001", "0.00009999999999996"),
            }
        ],
    )
    record_changes(
        any_app,
        asset_id(any_app, futures, "BTC"),
        [
            (10, "unknown", "matched", "0.30000000000000004", "3000.0000000000004", "0"),
            (5, "matched", "break", "0.30000000000000004", "3001", "0.00009999999999996"),
        ],
    )
    viewer = client_as(any_app, Role.VIEWER)
    response = viewer.get(f"/recon/{futures}/BTC/history.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "recon-contracts-BTC.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["from"], r["to"]) for r in rows] == [("matched", "break"), ("unknown", "matched")]
    assert rows[0]["left_amount"] == "0.30000000000000004"
    assert rows[0]["right_amount"] == "3001"
    assert rows[0]["right_compared"] == "0.3001"
    assert rows[0]["difference"] == "0.00009999999999996"
    assert rows[1]["right_amount"] == "3000.0000000000004"
    assert rows[1]["right_compared"] == "0.30000000000000004"
    assert rows[0]["at"].endswith("Z")


def test_csv_names_that_a_spreadsheet_would_run_are_quoted(app):
    recon = define(
        app, "=HYPERLINK(1)", assets=[{"left_asset": "BTC", **state("matched", "1", "1", "0")}]
    )
    record_changes(app, asset_id(app, recon, "BTC"), [(1, "unknown", "matched", "1", "1", "0")])
    viewer = client_as(app, Role.VIEWER)
    text = viewer.get(f"/recon/{recon}/BTC/history.csv").get_data(as_text=True)
    assert ",'=HYPERLINK(1)," in text


def test_series_carries_both_sides_in_left_units_and_the_break_spans(app):
    now = utcnow().replace(microsecond=0)
    store(
        app,
        [
            snap(account="book", asset="BTC", at=now - timedelta(minutes=30), amount="0.5"),
            snap(account="book", asset="BTC", at=now - timedelta(minutes=10), amount="0.75"),
            snap(account="venue", asset="XBTUSD", at=now - timedelta(minutes=29), amount="5000"),
            snap(account="venue", asset="XBTUSD", at=now - timedelta(minutes=9), amount="5000"),
        ],
    )
    recon = define(
        app,
        "contracts",
        "book",
        "venue",
        assets=[
            {
                "left_asset": "BTC",
                "right_asset": "XBTUSD",
                "multiplier": Decimal("0.0001"),
                **state("break", "0.75", "5000", "-0.25", minutes_ago=9),
            }
        ],
    )
    record_changes(
        app,
        asset_id(app, recon, "BTC"),
        [
            (29, "unknown", "matched", "0.5", "5000", "0"),
            (9, "matched", "break", "0.75", "5000", "-0.25"),
        ],
    )
    viewer = client_as(app, Role.VIEWER)
    document = viewer.get(f"/recon/{recon}/BTC/series").get_json()
    left, right = document["series"]
    assert left["account"] == "book BTC"
    assert [p[1] for p in left["points"]] == ["0.5", "0.75"]
    assert right["account"] == "venue XBTUSD x 0.0001"
    assert [p[1] for p in right["points"]] == ["0.5000", "0.5000"]
    assert all(p[2] is None for p in left["points"] + right["points"])
    spans = document["spans"]
    assert len(spans) == 1 and spans[0]["kind"] == "firing" and spans[0]["to"] is None
    assert document["point_count"] == 4


def test_series_refuses_a_bad_range(app, desk):
    viewer = client_as(app, Role.VIEWER)
    response = viewer.get(f"/recon/{desk}/BTC/series?from=yesterday")
    assert response.status_code == 400
    assert response.get_json()["parameter"] == "from"


def test_names_are_escaped(app):
    recon = define(
        app,
        "<script>x</script>",
        "{{7*7}}",
        "venue",
        assets=[{"left_asset": "<b>BTC", **state("matched", "1", "1", "0")}],
    )
    viewer = client_as(app, Role.VIEWER)
    for path in ("/recon", f"/recon/{recon}/%3Cb%3EBTC", "/recon/definitions"):
        html = viewer.get(path).get_data(as_text=True)
        assert "<script>x" not in html and "<b>BTC" not in html, path
        assert "&lt;script&gt;x&lt;/script&gt;" in html, path


def test_a_side_older_than_its_maximum_age_is_marked_stale(app):
    now = utcnow().replace(microsecond=0)
    store(
        app,
        [
            snap(account="book", asset="BTC", at=now - timedelta(minutes=1), amount="1"),
            snap(account="venue", asset="BTC", at=now - timedelta(minutes=20), amount="1"),
        ],
    )
    recon = save(app, "quiet venue", "book", "venue", [{"left_asset": "BTC"}])
    viewer = client_as(app, Role.VIEWER)
    row = cells(viewer.get("/recon").get_data(as_text=True), "recon")[0]
    assert row[6].split()[0] == "unknown"
    assert "stale" not in row[2] and "stale" in row[3]
    detail = viewer.get(f"/recon/{recon}/BTC").get_data(as_text=True)
    assert detail.count('class="badge stale"') == 1


def test_amounts_show_every_decimal_they_need_so_the_difference_adds_up(app):
    now = utcnow().replace(microsecond=0)
    store(
        app,
        [
            snap(account="book", asset="BTC", at=now, amount="2.5"),
            snap(account="venue", asset="XBT", at=now, amount="3250"),
        ],
    )
    save(
        app,
        "contracts",
        "book",
        "venue",
        [{"left_asset": "BTC", "right_asset": "XBT", "multiplier": Decimal("0.001")}],
    )
    viewer = client_as(app, Role.VIEWER)
    row = cells(viewer.get("/recon").get_data(as_text=True), "recon")[0]
    # BTC's own precision is one decimal (2.5): 3.25 and 0.75 would round to 3.2 and 0.8.
    assert row[2:5] == ["2.5 BTC", "3.25 BTC", "0.75 BTC"]


def test_detail_states_the_tolerance_in_force_for_the_asset(app, desk):
    viewer = client_as(app, Role.VIEWER)
    futures = re.search(
        r'href="/recon/(\d+)/BTC"[^>]*>BTC</a>\s*<br><small class="muted">↔ BTC-PERP',
        viewer.get("/recon").get_data(as_text=True),
    ).group(1)
    # Its own absolute tolerance, and the reconciliation's relative one: beyond both.
    html = viewer.get(f"/recon/{futures}/BTC").get_data(as_text=True)
    assert "±0.0001 BTC and ±1 % (a break is beyond both)" in html
    assert "±0.001 ETH" in viewer.get(f"/recon/{desk}/ETH").get_data(as_text=True)


def test_an_asset_with_a_slash_has_its_page_series_and_csv(app):
    now = utcnow().replace(microsecond=0)
    store(
        app,
        [
            snap(account="book", asset="BTC/USD", at=now, amount="1"),
            snap(account="venue", asset="BTC/USD", at=now, amount="1"),
        ],
    )
    recon = save(app, "pairs", "book", "venue", [{"left_asset": "BTC/USD"}])
    viewer = client_as(app, Role.VIEWER)
    assert f'href="/recon/{recon}/BTC/USD"' in viewer.get("/recon").get_data(as_text=True)
    assert viewer.get(f"/recon/{recon}/BTC/USD").status_code == 200
    series = viewer.get(f"/recon/{recon}/BTC/USD/series").get_json()
    assert [s["points"][0][1] for s in series["series"]] == ["1", "1"]
    assert viewer.get(f"/recon/{recon}/BTC/USD/history.csv").mimetype == "text/csv"
