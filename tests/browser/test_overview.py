"""The overview in a real browser: sortable rows that stay sorted, laptop and phone."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.auth.models import Role
from app.db_types import utcnow
from tests.alerts.helpers import add_rule
from tests.browser.test_live import signed_in
from tests.conftest import make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser

MINUS = "\u2212"


@pytest.fixture
def desk(live_server):
    """Four positions: a firing one (main/BTC above 10), a stale one, one with no price,
    and amounts a float could not tell apart."""
    app = live_server.app
    # Tests that read styles and boxes want rows that stay put; the sort test asks for
    # a refresh every second.
    app.config["LIVE_REFRESH_SECONDS"] = 60
    make_user(app, "alice")
    make_user(app, "olivia", role=Role.OPERATOR)
    add_rule(app, "BTC too big", "10", severity="critical", account="main")
    now = utcnow()
    store(
        app,
        [
            snap("main", "BTC", amount="12.5", price="64000", at=now - timedelta(seconds=5)),
            snap("hedge", "BTC", amount="-3.25", price="64000", at=now - timedelta(seconds=9)),
            snap(
                "a-rather-long-account-name",
                "VERYLONGASSETNAME-PERP-2027",
                amount="1.0000000000000000002",
                price=None,
                at=now - timedelta(seconds=20),
            ),
            snap(
                "hedge",
                "ETH",
                amount="1.0000000000000000001",
                price="3100",
                at=now - timedelta(hours=2),
            ),
        ],
    )
    return live_server


def column(page, index: int) -> list[str]:
    return page.locator(f"#overview tbody tr td:nth-child({index + 1})").all_inner_texts()


def keys(page) -> list[str]:
    return page.locator("#overview tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.liveKey)"
    )


def test_rows_sort_by_any_column_exactly_and_stay_sorted_across_refreshes(desk, open_page):
    desk.app.config["LIVE_REFRESH_SECONDS"] = 1
    page, problems = signed_in(open_page, desk.url)
    # The server's order: by asset, then account.
    assert keys(page) == [
        "hedge/BTC",
        "main/BTC",
        "hedge/ETH",
        "a-rather-long-account-name/VERYLONGASSETNAME-PERP-2027",
    ]
    asset_header = page.locator("#overview th").nth(0)
    expect(asset_header).to_have_attribute("aria-sort", "ascending")

    amount = page.locator("#overview th").nth(2)
    amount.get_by_role("button").click()
    expect(amount).to_have_attribute("aria-sort", "ascending")
    expect(asset_header).not_to_have_attribute("aria-sort", "ascending")
    # Exact decimals: ...0001 sorts before ...0002, which a float would call equal.
    assert keys(page) == [
        "hedge/BTC",
        "hedge/ETH",
        "a-rather-long-account-name/VERYLONGASSETNAME-PERP-2027",
        "main/BTC",
    ]
    amount.get_by_role("button").click()
    expect(amount).to_have_attribute("aria-sort", "descending")
    assert keys(page)[0] == "main/BTC" and keys(page)[-1] == "hedge/BTC"

    # Notional: the position with no price goes last, in either direction.
    notional = page.locator("#overview th").nth(4)
    notional.get_by_role("button").click()
    assert keys(page)[-1].endswith("/VERYLONGASSETNAME-PERP-2027")
    assert keys(page)[:3] == ["hedge/BTC", "hedge/ETH", "main/BTC"]
    notional.get_by_role("button").click()
    assert keys(page) == [
        "main/BTC",
        "hedge/ETH",
        "hedge/BTC",
        "a-rather-long-account-name/VERYLONGASSETNAME-PERP-2027",
    ]

    # A live refresh swaps in the server's order; the chosen one comes back at once.
    swaps = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener('htmx:afterSwap', (e) => {
                if (e.target.id !== 'overview-live') return;
                const keys = [...document.querySelectorAll('#overview tbody tr')]
                    .map((r) => r.dataset.liveKey);
                resolve(keys);
            });
        })"""
    )
    assert swaps[0] == "main/BTC"
    expect(page.locator("#overview th").nth(4)).to_have_attribute("aria-sort", "descending")
    assert keys(page)[0] == "main/BTC"
    # The keyboard works too: the header button keeps focus through a refresh.
    age = page.locator("#overview th").nth(6)
    age.get_by_role("button").focus()
    page.keyboard.press("Enter")
    expect(age).to_have_attribute("aria-sort", "ascending")
    assert keys(page)[0] == "main/BTC" and keys(page)[-1] == "hedge/ETH"
    page.evaluate("() => htmx.trigger('#overview-live', 'live-refresh')")
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.closest('th') === "
        "document.querySelectorAll('#overview th')[6]"
    )
    assert keys(page)[-1] == "hedge/ETH"
    problems.assert_none()


def test_the_chosen_order_survives_a_reload_and_the_utc_switch(desk, open_page):
    page, problems = signed_in(open_page, desk.url)
    notional = page.locator("#overview th").nth(4)
    notional.get_by_role("button").click()
    notional.get_by_role("button").click()
    expect(notional).to_have_attribute("aria-sort", "descending")
    order = keys(page)
    assert order[0] == "main/BTC"
    page.reload()
    expect(page.locator("#overview th").nth(4)).to_have_attribute("aria-sort", "descending")
    assert keys(page) == order
    page.get_by_role("button", name="UTC").click()
    expect(page.get_by_role("button", name="UTC")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#overview th").nth(4)).to_have_attribute("aria-sort", "descending")
    assert keys(page) == order
    # Another tab starts from the server's order.
    other = page.context.new_page()
    other.goto(desk.url + "/")
    expect(other.locator("#overview th").nth(0)).to_have_attribute("aria-sort", "ascending")
    problems.assert_none()


def test_firing_and_stale_rows_stand_out(desk, open_page):
    page, problems = signed_in(open_page, desk.url)
    firing = page.locator("#overview tr[data-live-key='main/BTC']")
    stale = page.locator("#overview tr[data-live-key='hedge/ETH']")
    quiet = page.locator("#overview tr[data-live-key='hedge/BTC']")
    expect(firing).to_have_class("alerting")
    expect(firing.locator(".badge.firing")).to_have_text("alert")
    expect(stale).to_have_class("stale")
    expect(stale.locator(".badge.stale")).to_have_text("stale")

    def edge(row):
        return row.locator("td").first.evaluate("td => getComputedStyle(td).boxShadow")

    assert edge(quiet) == "none"
    assert edge(firing) != "none" and edge(stale) != "none" and edge(firing) != edge(stale)
    # Negative amounts carry the minus sign and their own colour.
    amount = quiet.locator("td").nth(2).locator("span.num")
    expect(amount).to_have_text(f"{MINUS}3.25 BTC")
    expect(amount).to_have_class("num neg")
    assert amount.get_attribute("title") == "-3.25"
    problems.assert_none()


def page_width(page) -> list[int]:
    return page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth,"
        " document.documentElement.clientWidth]"
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(
    "size",
    [{"width": 1366, "height": 768}, {"width": 390, "height": 844}],
    ids=["laptop", "phone"],
)
def test_the_overview_never_scrolls_sideways(desk, open_page, size, scheme):
    page, problems = signed_in(open_page, desk.url, viewport=size, color_scheme=scheme)
    expect(page.locator("#overview")).to_be_visible()
    expect(page.locator("#account-totals")).to_be_visible()
    scroll_width, inner_width, client_width = page_width(page)
    wide = page.evaluate(
        """(limit) => [...document.querySelectorAll('body *')]
             .filter((e) => e.getBoundingClientRect().right > limit + 1)
             .map((e) => e.tagName + '.' + e.className + '#' + e.id)""",
        client_width,
    )
    assert scroll_width <= inner_width, (scroll_width, inner_width, wide)
    # Nothing hides in a box that scrolls sideways either.
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('#overview-live .table-scroll')]
             .map((b) => [b.scrollWidth, b.clientWidth])"""
    )
    assert all(inner <= outer for inner, outer in boxes), boxes
    problems.assert_none()


# Read in one go, in the page: the live refresh replaces the rows every second, and
# a style read from a row just swapped out would be empty.
CARD = """(key) => {
    const row = document.querySelector(`#overview tr[data-live-key="${key}"]`);
    const seen = (e) => {
        const box = e.getBoundingClientRect();
        return [Math.round(box.left), Math.round(box.right), box.width > 0 && box.height > 0];
    };
    return {
        display: getComputedStyle(row).display,
        cells: [...row.cells].map((td) => ({
            label: getComputedStyle(td, '::before').content,
            text: td.innerText.trim(),
            box: seen(td),
        })),
        marks: [...row.querySelectorAll('.badge')].map((b) => [b.textContent, ...seen(b)]),
    };
}"""


def test_on_a_phone_each_position_is_a_card_with_age_and_marks(desk, open_page):
    page, problems = signed_in(open_page, desk.url, viewport={"width": 390, "height": 844})
    expect(page.locator("#overview")).to_be_visible()
    firing = page.evaluate(CARD, "main/BTC")
    # One column of label/value lines, not a table row.
    assert firing["display"] == "block"
    shown = {c["label"]: c for c in firing["cells"] if c["label"] not in ("none", "")}
    for label in ["Asset", "Account", "Amount", "Notional (USD)", "Age", "State"]:
        cell = shown[f'"{label}"']
        left, right, visible = cell["box"]
        assert visible and left >= 0 and right <= 390, (label, cell)
    assert shown['"Amount"']["text"] == "12.50 BTC"  # hedge holds -3.25: two decimals
    assert shown['"Notional (USD)"']["text"] == "800,000.00"
    assert re.fullmatch(r"\d+s", shown['"Age"']["text"]), shown['"Age"']
    ((text, left, right, visible),) = firing["marks"]
    assert (text, visible) == ("alert", True) and left >= 0 and right <= 390
    stale = page.evaluate(CARD, "hedge/ETH")
    ages = [c["text"] for c in stale["cells"] if c["label"] == '"Age"']
    assert ages == ["2h"]
    ((text, left, right, visible),) = stale["marks"]
    assert (text, visible) == ("stale", True) and left >= 0 and right <= 390
    # The sort buttons stay usable on a phone, above the cards.
    amount = page.locator("#overview th").nth(2)
    expect(amount.get_by_role("button")).to_be_visible()
    amount.get_by_role("button").click()
    expect(amount).to_have_attribute("aria-sort", "ascending")
    # Totals are cards too.
    desk_card = page.locator("#account-totals tfoot tr")
    expect(desk_card).to_contain_text("All accounts")
    problems.assert_none()
