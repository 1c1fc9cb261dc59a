"""The overview's totals: per account, per asset and for the desk, in exact decimals."""

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from app.db_types import utcnow
from app.positions.totals import account_totals, asset_totals, desk_total, overview_rows
from tests.alerts.helpers import add_rule
from tests.positions.helpers import T0, snap, store

D = Decimal


class LatestRow(NamedTuple):
    """A latest-position row as the query returns it."""

    account: str
    asset: str
    timestamp: datetime
    amount: Decimal
    price: Decimal | None


STALE_AFTER = timedelta(minutes=5)

# (account, asset, amount, price, age): notionals worked out by hand below.
BOOK = [
    ("alpha", "BTC", "1.5", "64123.45", timedelta(seconds=30)),  # 96185.175
    ("alpha", "ETH", "-10.25", "3050.5", timedelta(seconds=30)),  # -31267.625
    ("alpha", "SOL", "200", None, timedelta(seconds=30)),  # no price, no notional
    ("beta", "BTC", "-0.75", "64000.01", timedelta(seconds=10)),  # -48000.0075
    ("beta", "ETH", "4.000001", "3051", timedelta(seconds=10)),  # 12204.003051
    ("gamma", "DOGE", "100000", "0.1234", timedelta(hours=2)),  # 12340.0000, stale
]


def book_rows(firing=frozenset()):
    now = T0 + timedelta(hours=3)
    latest = [
        LatestRow(account, asset, now - age, D(amount), None if price is None else D(price))
        for account, asset, amount, price, age in BOOK
    ]
    return overview_rows(latest, now, STALE_AFTER, set(firing))


def summary(total):
    return (
        total.name,
        total.positions,
        total.stale,
        total.firing,
        total.unpriced,
        total.net_notional,
        total.gross_notional,
    )


def test_rows_carry_notional_age_and_marks():
    rows = book_rows(firing={("beta", "ETH"), ("gamma", "*")})
    assert [r.notional for r in rows] == [
        D("96185.175"),
        D("-31267.625"),
        None,
        D("-48000.0075"),
        D("12204.003051"),
        D("12340.0000"),
    ]
    assert [(r.stale, r.firing) for r in rows] == [
        (False, False),
        (False, False),
        (False, False),
        (False, False),
        (False, True),
        (True, True),  # an alert on the whole account marks each of its rows
    ]
    assert rows[0].age == timedelta(seconds=30)


def test_account_totals_add_up_gross_and_net_notional_and_count_marks():
    totals = account_totals(book_rows(firing={("beta", "ETH"), ("gamma", "*")}))
    assert [summary(t) for t in totals] == [
        # 96185.175 - 31267.625; 96185.175 + 31267.625; SOL has no price.
        ("alpha", 3, 0, 0, 1, D("64917.550"), D("127452.800")),
        # -48000.0075 + 12204.003051; 48000.0075 + 12204.003051.
        ("beta", 2, 0, 1, 0, D("-35796.004449"), D("60204.010551")),
        ("gamma", 1, 1, 1, 0, D("12340.0000"), D("12340.0000")),
    ]


def test_asset_totals_add_up_amounts_and_notionals_across_accounts():
    totals = asset_totals(book_rows())
    assert [(t.name, t.positions, t.net_amount, t.unpriced) for t in totals] == [
        ("BTC", 2, D("0.75"), 0),
        ("DOGE", 1, D("100000"), 0),
        ("ETH", 2, D("-6.249999"), 0),
        ("SOL", 1, D("200"), 1),
    ]
    by_name = {t.name: (t.net_notional, t.gross_notional) for t in totals}
    assert by_name == {
        "BTC": (D("48185.1675"), D("144185.1825")),
        "DOGE": (D("12340.0000"), D("12340.0000")),
        "ETH": (D("-19063.621949"), D("43471.628051")),
        # Not 0: nothing is known of its value.
        "SOL": (None, None),
    }


def test_desk_total_is_every_account_together():
    desk = desk_total(book_rows(firing={("beta", "ETH")}))
    assert summary(desk) == (
        "All accounts",
        6,
        1,
        1,
        1,
        D("41461.545551"),  # 64917.550 - 35796.004449 + 12340.0000
        D("199996.810551"),  # 127452.800 + 60204.010551 + 12340.0000
    )


def test_totals_stay_exact_beyond_the_default_28_digits():
    now = T0
    latest = [
        LatestRow("a", "X", now, D("1E+30"), D("1")),
        LatestRow("a", "Y", now, D("-0.000000000000000000000000000001"), D("1")),
    ]
    (total,) = account_totals(overview_rows(latest, now, STALE_AFTER, set()))
    assert total.gross_notional == D(
        "1000000000000000000000000000000.000000000000000000000000000001"
    )
    assert total.net_notional == D("999999999999999999999999999999.999999999999999999999999999999")


def test_no_rows_no_totals():
    assert account_totals([]) == asset_totals([]) == []
    assert summary(desk_total([])) == ("All accounts", 0, 0, 0, 0, None, None)


def totals_table(html: str, table_id: str) -> list[list[str]]:
    """The text of each row (body and foot) of a totals table."""
    table = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("</thead>")[1], re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)
        ]
        for r in rows
    ]


def test_overview_page_shows_the_totals_of_its_rows(any_app, viewer_client):
    # beta holds more than 4 ETH: a rule fires on that one position.
    add_rule(any_app, "beta ETH over 4", "4", asset="ETH", account="beta")
    now = utcnow()
    store(
        any_app,
        [
            snap(account, asset, amount=amount, price=price, at=now - age)
            for account, asset, amount, price, age in BOOK
        ],
    )
    html = viewer_client.get("/").get_data(as_text=True)
    minus = "\u2212"
    assert totals_table(html, "account-totals") == [
        ["alpha", "3", "0", "0", "64,917.55", "127,452.80", "1"],
        ["beta", "2", "0", "1", f"{minus}35,796.00", "60,204.01", "0"],
        ["gamma", "1", "1", "0", "12,340.00", "12,340.00", "0"],
        ["All accounts", "6", "1", "1", "41,461.55", "199,996.81", "1"],
    ]
    assert totals_table(html, "asset-totals") == [
        ["BTC", "2", "0.75 BTC", "48,185.17", "144,185.18", "0"],
        ["DOGE", "1", "100,000 DOGE", "12,340.00", "12,340.00", "0"],
        ["ETH", "2", f"{minus}6.249999 ETH", f"{minus}19,063.62", "43,471.63", "0"],
        ["SOL", "1", "200 SOL", "\u2014", "\u2014", "1"],
    ]
    # The missing price is said, not silently counted as 0; exact sums on hover.
    assert "1 position has no price" in html
    assert 'title="-35796.004449"' in html and 'title="199996.810551"' in html


def test_totals_have_no_price_column_when_every_position_has_a_price(any_app, viewer_client):
    store(any_app, [snap(at=utcnow(), amount="2", price="10")])
    html = viewer_client.get("/").get_data(as_text=True)
    assert "Without price" not in html and "no price" not in html
    assert totals_table(html, "account-totals")[0] == ["main", "1", "0", "0", "20.00", "20.00"]


def test_stale_rows_count_in_their_account(any_app, viewer_client):
    store(any_app, [snap(asset="OLD", at=utcnow() - timedelta(hours=1))])
    table = totals_table(viewer_client.get("/").get_data(as_text=True), "account-totals")
    assert table[0][:3] == ["main", "1", "1"]


def test_overview_lists_rows_by_asset_then_account(any_app, viewer_client):
    now = utcnow()
    store(
        any_app,
        [
            snap("zeta", "BTC", at=now),
            snap("alpha", "ETH", at=now),
            snap("alpha", "BTC", at=now),
            snap("beta", "ADA", at=now),
        ],
    )
    html = viewer_client.get("/").get_data(as_text=True)
    keys = re.findall(r'data-live-key="([^"]+)"', html)
    assert keys == ["beta/ADA", "alpha/BTC", "zeta/BTC", "alpha/ETH"]
    # The header says so, for sort.js and screen readers alike.
    assert re.search(r'<th scope="col" data-sort="text" aria-sort="ascending">[^<]*<button', html)
    assert html.count("aria-sort=") == 1
