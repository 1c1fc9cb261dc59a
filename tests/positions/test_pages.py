"""Overview and history pages."""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest

from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from app.positions.models import LatestPosition, Position
from tests.conftest import Auth, ParsedPage, make_user
from tests.positions.helpers import snap, store


def cells(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row of a table."""
    body = re.search(rf'<table id="{table_id}"[^>]*>.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def exact_cells(html: str, table_id: str) -> list[list[str]]:
    """Each body row of a table, a number read as the exact stored digits in its title."""

    def exact(cell: str) -> str:
        number = re.search(r'<span class="num[^"]*" title="([^"]*)"', cell)
        return number.group(1) if number else re.sub(r"<[^>]+>", "", cell).strip()

    body = re.search(rf'<table id="{table_id}"[^>]*>.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [
        [exact(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_overview_shows_latest_amount_price_notional_and_age(any_app, viewer_client):
    now = utcnow().replace(microsecond=0)
    store(
        any_app,
        [
            snap(at=now - timedelta(minutes=10), amount="1", price="10"),
            snap(at=now - timedelta(seconds=30), amount="2.5", price="40000.10"),
            snap(
                account="hedge",
                asset="ETH",
                at=now - timedelta(seconds=5),
                amount="-3",
                price=None,
            ),
        ],
    )
    html = viewer_client.get("/").get_data(as_text=True)
    rows = cells(html, "overview")
    # Units, separators and the asset's precision; the quote currency is in the headers.
    assert rows[0][:5] == ["BTC", "main", "2.5 BTC", "40,000.10", "100,000.25"]
    assert rows[0][6] in {"30s", "31s", "32s"}
    assert rows[0][7] == "ok"
    # No price: no notional, shown as missing rather than as 0.
    assert rows[1][:5] == ["ETH", "hedge", "\u22123 ETH", "\u2014", "\u2014"]
    assert "Price (USD)" in html and "Notional (USD)" in html
    # The exact stored digits stay on hover and in the sort values.
    assert '<span class="num" title="100000.250">100,000.25</span>' in html
    assert 'data-value="100000.250"' in html


def test_overview_marks_rows_older_than_the_limit_stale(any_app, viewer_client):
    any_app.config["STALE_AFTER_SECONDS"] = 60
    now = utcnow()
    store(
        any_app,
        [
            snap(asset="OLD", at=now - timedelta(minutes=5)),
            snap(asset="NEW", at=now - timedelta(seconds=10)),
        ],
    )
    html = viewer_client.get("/").get_data(as_text=True)
    assert re.search(r'<tr class="stale" data-account="main" data-asset="OLD"[\s>]', html)
    assert re.search(r'<tr class="" data-account="main" data-asset="NEW"[\s>]', html)


def test_overview_is_answered_from_latest_rows_not_history(any_app, viewer_client):
    store(any_app, [snap(minutes=i) for i in range(3)])
    with any_app.app_context():
        db.session.execute(db.delete(Position))
        db.session.commit()
    assert "BTC" in viewer_client.get("/").get_data(as_text=True)


def test_history_lists_newest_first_with_the_numbers_sent(any_app, viewer_client):
    store(
        any_app,
        [
            snap(minutes=0, amount="0.1", price="0.2"),
            snap(minutes=1, amount="123456789.123456789012345678", price="1"),
        ],
    )
    response = viewer_client.get("/positions/BTC")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    rows = exact_cells(html, "history")
    assert [r[2] for r in rows] == ["123456789.123456789012345678", "0.1"]
    assert rows[1][3:] == ["0.2", "0.02"]
    assert rows[0][0] == "2026-03-01 12:01:00 UTC"
    # Shown with separators, the units in the headers; the exact digits on hover.
    assert cells(html, "history")[0][2].startswith("123,456,789.")
    assert "Amount (BTC)" in html and "Price (USD)" in html and "Notional (USD)" in html


def test_history_paginates_across_equal_timestamps_in_different_accounts(any_app, viewer_client):
    any_app.config["HISTORY_PAGE_SIZE"] = 3
    # Five accounts at the same two moments: page edges fall inside equal timestamps.
    store(
        any_app,
        [
            snap(account=f"acct{a}", minutes=m, amount=f"{m}.{a}")
            for m in range(2)
            for a in range(5)
        ],
    )
    seen, url = [], "/positions/BTC"
    pages = 0
    while url:
        html = viewer_client.get(url).get_data(as_text=True)
        seen.extend(r[2] for r in exact_cells(html, "history"))
        match = re.search(r'href="([^"]+)" rel="next"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
        pages += 1
    assert pages == 4
    # The pagers above and below the table are two landmarks, each with its own name.
    labels = re.findall(r'<nav class="pager" aria-label="([^"]+)"', html)
    assert labels == ["History pages, above the table", "History pages, below the table"]
    assert len(seen) == 10 and len(set(seen)) == 10
    assert set(seen[:5]) == {f"1.{a}" for a in range(5)}
    assert set(seen[5:]) == {f"0.{a}" for a in range(5)}


def test_history_filters_by_account_and_time_range(any_app, viewer_client):
    store(
        any_app,
        [snap(account=acct, minutes=m, amount=f"{m}") for acct in ("a", "b") for m in range(10)],
    )
    html = viewer_client.get("/positions/BTC?account=b").get_data(as_text=True)
    rows = exact_cells(html, "history")
    assert {r[1] for r in rows} == {"b"} and len(rows) == 10
    html = viewer_client.get(
        "/positions/BTC?account=a&from=2026-03-01T12:03&to=2026-03-01T12:06"
    ).get_data(as_text=True)
    assert [r[2] for r in exact_cells(html, "history")] == ["5", "4", "3"]


def test_time_filters_are_read_in_the_viewers_timezone(any_app, viewer_client):
    with any_app.app_context():
        db.session.execute(db.update(User).values(timezone="Asia/Tokyo"))
        db.session.commit()
    store(any_app, [snap(minutes=m, amount=str(m)) for m in range(5)])
    # 21:02 in Tokyo is 12:02 UTC.
    html = viewer_client.get("/positions/BTC?from=2026-03-01T21:02").get_data(as_text=True)
    rows = exact_cells(html, "history")
    assert [r[2] for r in rows] == ["4", "3", "2"]
    assert rows[0][0] == "2026-03-01 21:04:00 JST"
    assert 'title="2026-03-01T12:04:00Z"' in html


def test_bad_filter_and_bad_cursor_are_explained(any_app, viewer_client):
    store(any_app, [snap()])
    response = viewer_client.get("/positions/BTC?from=yesterday")
    assert response.status_code == 400
    assert "must look like" in response.get_data(as_text=True)
    response = viewer_client.get("/positions/BTC?cursor=not-a-cursor")
    assert response.status_code == 400
    assert "not valid" in response.get_data(as_text=True)


def test_unknown_asset_is_a_404_that_links_to_the_overview(any_app, viewer_client):
    store(any_app, [snap()])
    response = viewer_client.get("/positions/DOGE")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "No data for DOGE" in html and 'href="/"' in html


HOSTILE = ["<script>alert(1)</script>", "{{7*7}}", "\"'><img src=x>"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_asset_and_account_names_are_escaped(any_app, viewer_client, name):
    store(any_app, [snap(asset=name, account=name)])
    for path in ("/", f"/positions/{quote(name, safe='')}"):
        response = viewer_client.get(path)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        page = ParsedPage(html)
        # The name reads back as text, and no element or attribute came from it.
        assert page.shows_as_text(name)
        assert "<script>alert" not in html and "<img src=x>" not in html
        assert not page.elements("img")
        assert all("src" in attrs for attrs in page.elements("script"))
    overview = ParsedPage(viewer_client.get("/").get_data(as_text=True))
    row = next(attrs for attrs in overview.elements("tr") if "data-asset" in attrs)
    assert row["data-asset"] == row["data-account"] == name


def test_amounts_round_trip_exactly_through_the_page(any_app, viewer_client):
    values = ["0.1", "0.2", "0.30000000000000004", "1.000000000000000001"]
    store(any_app, [snap(minutes=i, amount=v, price=v) for i, v in enumerate(values)])
    rows = exact_cells(viewer_client.get("/positions/BTC").get_data(as_text=True), "history")
    assert [r[2] for r in rows] == list(reversed(values))
    assert [r[3] for r in rows] == list(reversed(values))
    # Exact, not rounded to the default 28 significant digits.
    assert rows[0][4] == "1.000000000000000002000000000000000001"


def test_history_rejects_viewing_without_login(any_app):
    store(any_app, [snap()])
    response = any_app.test_client().get("/positions/BTC?account=main")
    assert response.status_code == 302
    assert response.location == "/login?next=/positions/BTC?account%3Dmain"


def test_history_page_has_the_chart_and_loads_only_same_origin_scripts(any_app, viewer_client):
    store(any_app, [snap(), snap(account="hedge")])
    html = viewer_client.get("/positions/BTC?account=main").get_data(as_text=True)
    chart = re.search(r'<section id="chart"[^>]*>', html)
    assert chart, "no chart container"
    assert 'data-series-url="/positions/BTC/series"' in chart.group(0)
    assert 'data-timezone="UTC"' in chart.group(0)
    # Range buttons are links that keep the account filter (they work without scripts).
    assert re.search(r'data-range="24h" href="/positions/BTC\?account=main&amp;range=24h"', html)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    sources = [re.search(r'src="([^"]+)"', attrs) for attrs, _ in scripts]
    assert all(sources), "a script without src"
    paths = [s.group(1).split("?")[0] for s in sources]
    assert all(p.startswith("/static/") for p in paths), paths
    assert {"/static/vendor/uPlot.iife.min.js", "/static/js/chart.js"} <= set(paths)
    assert all(not body.strip() for _, body in scripts), "inline script"
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert "/static/css/chart.css" in [s.split("?")[0] for s in styles]
    assert all(s.startswith("/static/") for s in styles), styles


def test_history_range_shows_the_window_ending_now_in_table_pager_and_csv_link(
    any_app, viewer_client
):
    now = utcnow().replace(microsecond=0)
    store(
        any_app,
        [
            snap(at=now - timedelta(hours=2), amount="2"),
            snap(at=now - timedelta(hours=30), amount="30"),
            snap(at=now - timedelta(days=10), amount="240"),
        ],
    )
    html = viewer_client.get("/positions/BTC?range=24h").get_data(as_text=True)
    assert [r[2] for r in exact_cells(html, "history")] == ["2"]
    assert 'href="/positions.csv?asset=BTC&amp;range=24h"' in html
    assert '<input type="hidden" name="range" value="24h">' in html
    html = viewer_client.get("/positions/BTC?range=7d").get_data(as_text=True)
    assert [r[2] for r in exact_cells(html, "history")] == ["2", "30"]
    html = viewer_client.get("/positions/BTC?range=all").get_data(as_text=True)
    assert [r[2] for r in exact_cells(html, "history")] == ["2", "30", "240"]


def test_history_explicit_from_to_win_over_a_range(any_app, viewer_client):
    store(any_app, [snap(minutes=m, amount=str(m)) for m in range(5)])
    # T0 is 2026-03-01 12:00 UTC: far outside "the last hour", inside from/to.
    response = viewer_client.get(
        "/positions/BTC?range=1h&from=2026-03-01T12:01&to=2026-03-01T12:03"
    )
    assert response.status_code == 200
    assert [r[2] for r in exact_cells(response.get_data(as_text=True), "history")] == ["2", "1"]


def test_history_unknown_range_is_explained(any_app, viewer_client):
    store(any_app, [snap()])
    response = viewer_client.get("/positions/BTC?range=5y")
    assert response.status_code == 400
    assert "must be one of 1h, 24h, 7d, 30d or all" in response.get_data(as_text=True)


def test_live_refresh_of_the_overview_gets_the_table_alone(any_app, viewer_client):
    store(any_app, [snap(at=utcnow(), amount="4.25")])

    html = viewer_client.get("/", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert "<html" not in html and "<nav" not in html
    assert re.match(r'\s*<div id="overview-live" data-live hx-get="/"', html)
    assert cells(html, "overview")[0][:3] == ["BTC", "main", "4.25 BTC"]
    assert 'data-live-key="main/BTC"' in html
    # The totals are part of the live region: they refresh with the rows they add up.
    assert '<table id="account-totals"' in html and '<table id="asset-totals"' in html


def test_overview_leaves_the_sparklines_to_their_own_request(any_app, viewer_client, monkeypatch):
    from app.positions import sparklines

    def refuse(*args, **kwargs):
        raise AssertionError("the overview page queried the sparkline series")

    monkeypatch.setattr(sparklines, "sparklines", refuse)
    store(any_app, [snap(at=utcnow())])

    response = viewer_client.get("/")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-sparklines-url="/overview/sparklines"' in html
    assert re.search(r'<td data-label="Last 24 h" class="spark"></td>', html)


def test_history_shows_the_digits_stored_now_after_a_snapshot_is_replaced(any_app, viewer_client):
    # Rows are reused between requests; 1.00 equals 1.0 as a number, so only keying
    # them by what is stored keeps the page showing the digits sent.
    store(any_app, [snap(amount="1.0", price="2.0")])
    assert exact_cells(viewer_client.get("/positions/BTC").text, "history")[0][2:] == [
        "1.0",
        "2.0",
        "2.00",
    ]
    with any_app.app_context():
        db.session.execute(db.delete(Position))
        db.session.execute(db.delete(LatestPosition))
        db.session.commit()
    store(any_app, [snap(amount="1.00", price="2")])
    assert exact_cells(viewer_client.get("/positions/BTC").text, "history")[0][2:] == [
        "1.00",
        "2",
        "2.00",
    ]


def test_history_rows_are_shown_in_each_viewers_own_timezone(any_app, viewer_client):
    store(any_app, [snap(minutes=m) for m in range(3)])
    make_user(any_app, "kenji", role="viewer")
    with any_app.app_context():
        db.session.execute(
            db.update(User).where(User.username == "kenji").values(timezone="Asia/Tokyo")
        )
        db.session.commit()
    tokyo = any_app.test_client()
    assert Auth(tokyo).login(username="kenji").status_code == 302
    for _ in range(2):  # the second round reads rows rendered by the first
        assert cells(viewer_client.get("/positions/BTC").text, "history")[0][0] == (
            "2026-03-01 12:02:00 UTC"
        )
        assert cells(tokyo.get("/positions/BTC").text, "history")[0][0] == (
            "2026-03-01 21:02:00 JST"
        )


def test_overview_rows_show_each_visits_age_and_the_latest_digits(
    any_app, viewer_client, monkeypatch
):
    # The age is each visit's own, and a new snapshot's digits show at once.
    now = utcnow().replace(microsecond=0)
    monkeypatch.setattr("app.positions.routes.utcnow", lambda: now)
    store(any_app, [snap(at=now - timedelta(seconds=30), amount="1.0", price="2")])
    row = cells(viewer_client.get("/").text, "overview")[0]
    assert (row[2:5], row[6]) == (["1 BTC", "2", "2.00"], "30s")
    monkeypatch.setattr("app.positions.routes.utcnow", lambda: now + timedelta(minutes=2))
    assert cells(viewer_client.get("/").text, "overview")[0][6] == "2m 30s"
    store(any_app, [snap(at=now, amount="1.25", price="2")])
    html = viewer_client.get("/").text
    row = cells(html, "overview")[0]
    assert (row[2:5], row[6]) == (["1.25 BTC", "2", "2.50"], "2m")
    assert 'data-value="1.25"' in html and 'title="2.50"' in html
