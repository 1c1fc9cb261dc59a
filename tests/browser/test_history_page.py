"""The history page in Chromium: the whole chart on a laptop's first screen, the table
within a phone's width, and the from/to filters typed as ISO text in the viewer's zone."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def open_history(open_page, desk, viewport, path="/positions/BTC"):
    page = open_page(viewport=viewport, storage_state=desk.storage_state)
    page.goto(desk.url + path, wait_until="networkidle")
    return page


def test_title_alerts_and_the_whole_chart_fit_a_laptops_first_screen(open_page, desk):
    page = open_history(open_page, desk, LAPTOP)
    expect(page.locator("#chart canvas").first).to_be_visible()
    chart = page.locator("#chart .chart-plot").bounding_box()
    assert chart["height"] > 150
    assert chart["y"] + chart["height"] <= LAPTOP["height"], chart
    # The chart comes before the table.
    table = page.locator("table#history").bounding_box()
    assert table["y"] > chart["y"] + chart["height"]


def test_the_table_fits_a_phone_without_scrolling_sideways(open_page, desk):
    page = open_history(open_page, desk, PHONE)
    widths = page.evaluate(
        """() => ({page: document.documentElement.scrollWidth,
                   table: document.querySelector('table#history').scrollWidth,
                   box: document.querySelector('table#history').parentElement.clientWidth})"""
    )
    assert widths["page"] <= PHONE["width"], widths
    assert widths["table"] <= widths["box"], widths
    first_row = page.locator("table#history tbody tr").first
    expect(first_row.locator("td.time")).to_be_visible()
    expect(first_row.locator("td.num").first).to_have_text("4.500")
    expect(page.locator("table#history thead")).to_contain_text("Amount (BTC)")


def test_from_and_to_are_iso_text_read_in_the_viewers_zone(open_page, desk):
    page = open_history(open_page, desk, LAPTOP)
    start = page.locator("#history-filters input[name=from]")
    assert start.get_attribute("type") == "text"
    assert start.get_attribute("placeholder") == "yyyy-mm-dd hh:mm"
    # A shape the pattern refuses never leaves the browser.
    start.fill("12/06/2026")
    assert not start.evaluate("e => e.checkValidity()")
    start.fill("2000-01-01 00:00")
    assert start.evaluate("e => e.checkValidity()")
    page.locator("#history-filters input[name=to]").fill("2000-01-02")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_load_state("networkidle")
    assert "from=2000-01-01+00%3A00" in page.url and "to=2000-01-02" in page.url
    expect(page.locator("#history-results")).to_contain_text("No snapshots match these filters.")
    expect(page.locator("#history-filters input[name=from]")).to_have_value("2000-01-01 00:00")
