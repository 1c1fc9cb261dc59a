"""The alerts room's pages on a desk's laptop (1366 x 768) and a phone (390 x 844), light and
dark: no page scrolls sideways, Acknowledge is on screen and clickable (a thumb-sized
button on a phone), and the rule form shows only the chosen kind's fields."""

import pytest
from flask import url_for
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

SIZES = {"desk": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
SCHEMES = ("light", "dark")
THUMB_PX = 44

PAGES = {
    "alerts": ("alerts.index", {}),
    "alert": ("alerts.detail", {"alert_id": "alert"}),
    "history": ("alerts.history", {}),
    "rules": ("alert_rules.rules", {}),
    "new rule": ("alert_rules.edit_rule", {}),
    "edit rule": ("alert_rules.edit_rule", {"rule_id": "rule"}),
    "channels": ("alert_channels.channels", {}),
    "silences": ("alerts.silences", {}),
}


def path_of(desk, name: str) -> str:
    endpoint, args = PAGES[name]
    with desk.app.test_request_context():
        return url_for(endpoint, **{key: desk.ids[value] for key, value in args.items()})


def open_at(open_page, desk, name: str, size: str, scheme: str) -> Page:
    page = open_page(viewport=SIZES[size], color_scheme=scheme, storage_state=desk.storage_state)
    page.goto(desk.url + path_of(desk, name), wait_until="networkidle")
    return page


def sideways(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


@pytest.mark.parametrize("name", list(PAGES))
def test_alert_pages_never_scroll_sideways(open_page, desk, artifacts_dir, name):
    wide = []
    for size in SIZES:
        for scheme in SCHEMES:
            page = open_at(open_page, desk, name, size, scheme)
            expect(page.locator("main h1")).to_be_visible()
            stem = f"alerts-{name.replace(' ', '-')}-{size}-{scheme}"
            page.screenshot(caret="initial", path=artifacts_dir / f"{stem}.png", full_page=True)
            scroll_width, inner_width = sideways(page)
            if scroll_width > inner_width:
                wide.append(f"{size} {scheme}: {scroll_width} px in {inner_width}")
            page.context.close()
    assert not wide, f"{name} scrolls sideways: {wide}"


@pytest.mark.parametrize("name", ["alerts", "alert"])
@pytest.mark.parametrize("size", list(SIZES))
def test_acknowledge_is_on_screen_and_clickable(open_page, desk, name, size):
    page = open_at(open_page, desk, name, size, "light")
    button = page.locator("main").get_by_role("button", name="Acknowledge", exact=True).first

    expect(button).to_be_visible()
    box = button.bounding_box()
    width, height = page.evaluate("[window.innerWidth, window.innerHeight]")
    # Whole on screen without scrolling sideways, and within the first screenful.
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, box
    if size == "phone":
        assert box["height"] >= THUMB_PX, box
    button.click(trial=True)


def test_phone_shows_each_alert_as_a_card(open_page, desk):
    page = open_at(open_page, desk, "alerts", "phone", "light")
    rows = page.locator("#alerts tbody tr")

    assert rows.count() >= 2
    for i in range(rows.count()):
        box = rows.nth(i).bounding_box()
        # A card: the whole width of the screen (minus margins), stacked, not a table row.
        assert box["width"] <= 390 and box["width"] > 300, box
    expect(page.locator("#alerts thead")).to_be_hidden()


def test_rule_form_shows_only_the_fields_of_the_chosen_kind(open_page, desk):
    page = open_at(open_page, desk, "new rule", "desk", "light")
    window = page.locator("input[name=window_seconds]")
    clear = page.locator("input[name=clear_threshold]")
    asset = page.locator("input[name=asset]")

    page.select_option("select[name=kind]", "position_above")
    expect(window).to_be_hidden()
    expect(clear).to_be_visible()
    expect(asset).to_be_visible()

    page.select_option("select[name=kind]", "change_over_window")
    expect(window).to_be_visible()
    expect(page.locator("input[name=change_percent]")).to_be_visible()

    page.select_option("select[name=kind]", "gross_exposure_above")
    expect(window).to_be_hidden()
    expect(asset).to_be_hidden()

    page.select_option("select[name=kind]", "stale_feed")
    expect(clear).to_be_hidden()
    expect(page.get_by_text("seconds without a snapshot")).to_be_visible()


def test_alert_page_draws_the_chart_with_the_rule_line_and_the_firing_span(open_page, desk):
    page = open_at(open_page, desk, "alert", "desk", "dark")
    chart = page.locator("#chart")

    expect(chart).to_have_attribute("data-state", "ready")
    assert int(chart.get_attribute("data-limits")) >= 1
    assert int(chart.get_attribute("data-spans")) >= 1
    # The window is the one around the alert, not the page's range buttons.
    assert chart.get_attribute("data-from").endswith("Z")


def test_rule_preview_is_drawn_on_the_chart_and_still_listed(open_page, desk, artifacts_dir):
    page = open_at(open_page, desk, "edit rule", "desk", "light")

    page.get_by_role("button", name="Preview", exact=True).click()

    chart = page.locator("#preview #chart")
    expect(chart).to_have_attribute("data-state", "ready")
    # Where it would have fired: BTC on hedge (and back) and on main (still firing).
    assert int(chart.get_attribute("data-spans")) >= 2
    assert int(chart.get_attribute("data-limits")) >= 2  # its limit and clear lines
    expect(page.locator("#preview-transitions tbody tr")).to_have_count(3)
    page.screenshot(
        caret="initial", path=artifacts_dir / "alerts-rule-preview.png", full_page=True
    )
    scroll_width, inner_width = sideways(page)
    assert scroll_width <= inner_width
