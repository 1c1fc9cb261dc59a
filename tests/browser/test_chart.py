"""The history page's chart in a real browser: drawing, range buttons, zoom, shared links.

Screenshots land in test-artifacts/browser/ (git-ignored).
"""

import json
import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from app.alerts.models import Alert, AlertRule, AlertState, AlertTransition, RuleKind
from app.auth.models import User
from app.db_types import format_decimal, utcnow
from app.extensions import db
from app.positions.models import notional
from tests.conftest import PASSWORD, make_user
from tests.positions.helpers import snap, store

pytestmark = pytest.mark.browser

ZONE = "Asia/Kolkata"  # +05:30 all year: far from UTC, and no daylight-saving edge
STEP = timedelta(minutes=5)
PER_ACCOUNT = 1440  # five days every five minutes: 2,880 snapshots, past the chart's cap
EXACT = "0.100000000000000000001"  # what a float would show as 0.1
RULE = "BTC long limit"
# The colours of the first two lines in chart.css: hedge, then main (accounts sorted).
HEDGE_RGB, MAIN_RGB = (0x3B, 0x82, 0xF6), (0xF9, 0x73, 0x16)
CHART = "#chart"
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture
def seeded(live_server):
    """alice (viewer, Asia/Kolkata), two BTC accounts over five days, one alert's transitions.

    Returns the snapshot times (UTC) and `now`.
    """
    app = live_server.app
    user_id = make_user(app, "alice")
    # Half a minute back: no snapshot sits on the edge of a window that ends "now".
    now = (utcnow() - timedelta(seconds=30)).replace(microsecond=0)
    snapshots = []
    for i in range(PER_ACCOUNT):
        at = now - i * STEP
        main_amount = EXACT if i == 0 else f"{i % 50}.{i:04d}"
        snapshots.append(snap(account="main", at=at, amount=main_amount, price="100.25"))
        hedge_at = at - STEP / 2
        snapshots.append(snap(account="hedge", at=hedge_at, amount=f"-{i % 30}.5", price="100.25"))
    assert store(app, snapshots).inserted == 2 * PER_ACCOUNT
    with app.app_context():
        user = db.session.get(User, user_id)
        user.timezone = ZONE
        user.timezone_chosen = True  # not replaced by the browser's own zone
        rule = AlertRule(name=RULE, kind=RuleKind.POSITION_ABOVE, threshold=Decimal("40"))
        alert = Alert(rule=rule, account="main", asset="BTC", state=AlertState.RESOLVED)
        fired, resolved = now - timedelta(hours=3), now - timedelta(hours=2)
        alert.transitions = [
            AlertTransition(
                from_state="normal", to_state="firing", value=Decimal("42.5"), at=fired
            ),
            AlertTransition(
                from_state="firing", to_state="resolved", value=Decimal("1"), at=resolved
            ),
        ]
        db.session.add(alert)
        db.session.commit()
    return {"times": sorted(s.timestamp for s in snapshots), "now": now, "fired": fired}


@pytest.fixture
def page(browser_page, live_server, seeded):
    """A page logged in as alice and on the BTC history page, watching for errors."""
    page = browser_page
    page.add_init_script(WATCH_CSP)
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    page.goto(f"{live_server.url}/login?next=/positions/BTC")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    button(page, "Log in").click()
    expect(page).to_have_url(f"{live_server.url}/positions/BTC")
    wait_for_chart(page)
    return page


def button(page, name):
    return page.get_by_role("button", name=name, exact=True)


def wait_for_chart(page, state="ready"):
    """Wait until the chart has settled (drawn, empty or failed), then check which."""
    # Null-safe: right after a navigation the new page's chart may not exist yet, and a
    # predicate that throws ends the wait instead of retrying.
    page.wait_for_function(
        "() => { const el = document.getElementById('chart');"
        " return el !== null && ['ready', 'empty', 'error'].includes(el.dataset.state)"
        " && !el.hasAttribute('aria-busy'); }"
    )
    info = chart_info(page)
    assert info["state"] == state, page.locator(f"{CHART} .chart-message").inner_text()


def chart_info(page) -> dict:
    return page.locator(CHART).evaluate("el => ({...el.dataset})")


def x_span(page) -> float:
    info = chart_info(page)
    return float(info["xMax"]) - float(info["xMin"])


def query_of(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def point_at(page, moment: datetime) -> tuple[float, float]:
    """Page coordinates of `moment` on the plot's time axis, halfway down."""
    box = page.locator(f"{CHART} .u-over").bounding_box()
    info = chart_info(page)
    lo, hi = float(info["xMin"]), float(info["xMax"])
    fraction = (moment.timestamp() - lo) / (hi - lo)
    return box["x"] + fraction * box["width"], box["y"] + box["height"] / 2


def line_pixels(page, rgb) -> int:
    """Opaque pixels of the plot's canvas within a small distance of `rgb`."""
    return page.locator(f"{CHART} canvas").evaluate(
        """(canvas, rgb) => {
          const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) < 40 && Math.abs(d[i + 1] - rgb[1]) < 40
                && Math.abs(d[i + 2] - rgb[2]) < 40) n++;
          }
          return n;
        }""",
        list(rgb),
    )


def legend_value(page, label: str) -> str:
    row = page.locator(
        f"{CHART} .u-legend .u-series", has=page.locator(".u-label", has_text=label)
    )
    return row.locator(".u-value").inner_text()


def table_times(page) -> list[datetime]:
    stamps = page.locator("#history tbody tr time").evaluate_all(
        "els => els.map(e => e.getAttribute('datetime'))"
    )
    return [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]


def local_input(text: str) -> datetime:
    """A from/to value as the server reads it: wall time in the viewer's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(ZONE))


def assert_no_console_errors_or_csp_violations(page, allowed=()):
    errors = [p for p in page.problems if not any(a in p for a in allowed)]
    assert errors == []
    assert page.evaluate("window.__cspViolations") == []


def test_chart_draws_every_account_markers_and_exact_values_in_the_viewer_zone(
    page, seeded, artifacts_dir
):
    button(page, "24 h").click()
    wait_for_chart(page)

    # Both accounts' lines are on the canvas, and both alert transitions of the window.
    assert line_pixels(page, HEDGE_RGB) > 100
    assert line_pixels(page, MAIN_RGB) > 100
    assert chart_info(page)["markers"] == "2"

    # Hovering the newest snapshot reads out its time in Asia/Kolkata and the exact amount.
    now = seeded["now"]
    page.mouse.move(*point_at(page, now))
    expect(page.locator(f"{CHART} .u-legend .u-series").first.locator(".u-value")).to_contain_text(
        now.astimezone(zoneinfo.ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    )
    assert legend_value(page, "main amount") == EXACT

    # Hovering a marker names its rule, state and value.
    tip = page.locator(f"{CHART} .chart-marker-tip")
    expect(tip).to_be_hidden()
    page.mouse.move(*point_at(page, seeded["fired"]))
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(f"{RULE}: firing · main · value 42.5")

    # Notional is a toggle: the same lines, in money.
    button(page, "Notional").click()
    wait_for_chart(page)
    assert query_of(page)["chart"] == ["notional"]
    page.mouse.move(*point_at(page, now))
    expected = format_decimal(notional(Decimal(EXACT), Decimal("100.25")))
    assert legend_value(page, "main notional") == expected
    button(page, "Amount").click()
    wait_for_chart(page)

    page.mouse.move(0, 0)
    page.screenshot(caret="initial", path=artifacts_dir / "chart-history-light.png")
    page.locator(CHART).screenshot(caret="initial", path=artifacts_dir / "chart-light.png")
    light = page.locator(f"{CHART} canvas").evaluate("c => c.toDataURL()")
    switch = page.get_by_test_id("theme-switch")
    for _ in range(3):
        if page.evaluate("document.documentElement.dataset.theme") == "dark":
            break
        switch.click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    wait_for_chart(page)
    # Redrawn with the dark theme's axis and grid colours.
    expect(page.locator(f"{CHART} canvas")).to_be_visible()
    assert page.locator(f"{CHART} canvas").evaluate("c => c.toDataURL()") != light
    assert line_pixels(page, MAIN_RGB) > 100
    page.screenshot(caret="initial", path=artifacts_dir / "chart-history-dark.png")
    page.locator(CHART).screenshot(caret="initial", path=artifacts_dir / "chart-dark.png")

    assert_no_console_errors_or_csp_violations(page)


def test_range_buttons_change_url_chart_and_table_and_back_restores(page, seeded):
    base_path = urlsplit(page.url).path
    everything = chart_info(page)
    assert everything["pointCount"] != "0"
    assert button(page, "All").get_attribute("aria-pressed") == "true"
    # All 2,880 snapshots are more than the chart draws: it says they are downsampled.
    assert int(everything["pointCount"]) < 2 * PER_ACCOUNT
    expect(page.locator(f"{CHART} .chart-note")).to_contain_text("Downsampled")

    button(page, "24 h").click()
    wait_for_chart(page)
    assert urlsplit(page.url).path == base_path
    assert query_of(page) == {"range": ["24h"]}
    assert abs(x_span(page) - 86400) < 5
    day = chart_info(page)
    # Every snapshot of the last 24 hours, at full resolution.
    assert int(day["pointCount"]) == 2 * 288
    expect(page.locator(f"{CHART} .chart-note")).to_be_empty()
    assert button(page, "24 h").get_attribute("aria-pressed") == "true"
    # The table below shows the same window.
    expect(page.locator("#history-results a[download]")).to_have_attribute(
        "href", "/positions.csv?asset=BTC&range=24h"
    )
    assert min(table_times(page)) >= seeded["now"] - timedelta(hours=24)

    button(page, "1 h").click()
    wait_for_chart(page)
    assert query_of(page) == {"range": ["1h"]}
    assert abs(x_span(page) - 3600) < 5
    assert int(chart_info(page)["pointCount"]) == 2 * 12
    expect(page.locator("#history tbody tr")).to_have_count(2 * 12)

    # Back: the 24-hour view again, chart and table.
    page.go_back()
    wait_for_chart(page)
    assert query_of(page) == {"range": ["24h"]}
    assert chart_info(page)["pointCount"] == day["pointCount"]
    expect(page.locator("#history tbody tr")).to_have_count(100)

    button(page, "All").click()
    wait_for_chart(page)
    assert query_of(page) == {}
    assert chart_info(page)["pointCount"] == everything["pointCount"]

    assert_no_console_errors_or_csp_violations(page)


def test_shared_link_restores_range_account_and_custom_window(page, live_server, seeded):
    page.goto(f"{live_server.url}/positions/BTC?account=main&range=7d")
    wait_for_chart(page)
    assert button(page, "7 d").get_attribute("aria-pressed") == "true"
    assert abs(x_span(page) - 7 * 86400) < 5
    legend = page.locator(f"{CHART} .u-legend .u-label").all_inner_texts()
    assert [label.strip() for label in legend[1:]] == ["main amount"]
    expect(page.locator("select[name=account]")).to_have_value("main")
    accounts = page.locator("#history tbody tr td:nth-child(2)").all_inner_texts()
    assert set(accounts) == {"main"}

    # A custom window typed in the viewer's zone: the chart spans exactly it.
    now_local = seeded["now"].astimezone(zoneinfo.ZoneInfo(ZONE))
    start = (now_local - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    end = (now_local - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
    page.goto(f"{live_server.url}/positions/BTC?from={start}&to={end}")
    wait_for_chart(page)
    info = chart_info(page)
    assert float(info["xMin"]) == local_input(start).timestamp()
    assert float(info["xMax"]) == local_input(end).timestamp()
    expect(page.locator("input[name=from]")).to_have_value(start)
    in_window = [t for t in seeded["times"] if local_input(start) <= t < local_input(end)]
    assert int(info["pointCount"]) == len(in_window) == 2 * 24
    assert sorted(table_times(page)) == in_window
    for name in ("1 h", "24 h", "7 d", "30 d", "All"):
        assert button(page, name).get_attribute("aria-pressed") == "false"

    assert_no_console_errors_or_csp_violations(page)


def test_dragging_across_the_chart_zooms_in_at_full_resolution(page, seeded):
    assert chart_info(page)["pointCount"] != str(2 * PER_ACCOUNT)  # downsampled to begin with
    x1, y = point_at(page, seeded["now"] - timedelta(hours=10))
    x2, _ = point_at(page, seeded["now"] - timedelta(hours=7))
    page.mouse.move(x1, y)
    page.mouse.down()
    page.mouse.move(x2, y, steps=8)
    page.mouse.up()
    wait_for_chart(page)

    query = query_of(page)
    assert set(query) == {"from", "to"}
    start, end = local_input(query["from"][0]), local_input(query["to"][0])
    assert timedelta(hours=2) < end - start < timedelta(hours=4)
    info = chart_info(page)
    assert float(info["xMin"]) == start.timestamp()
    assert float(info["xMax"]) == end.timestamp()
    in_window = [t for t in seeded["times"] if start <= t < end]
    assert int(info["pointCount"]) == len(in_window)
    expect(page.locator(f"{CHART} .chart-note")).to_be_empty()
    expect(page.locator("input[name=from]")).to_have_value(query["from"][0])
    expect(page.locator("input[name=to]")).to_have_value(query["to"][0])
    expect(page.locator("#history tbody tr")).to_have_count(len(in_window))
    assert sorted(table_times(page)) == in_window

    assert_no_console_errors_or_csp_violations(page)


def test_filter_form_applies_a_custom_window_without_reloading(page, seeded):
    page.evaluate("window.__sameDocument = true")
    now_local = seeded["now"].astimezone(zoneinfo.ZoneInfo(ZONE))
    start = (now_local - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    end = (now_local - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    page.fill("input[name=from]", start)
    page.fill("input[name=to]", end)
    page.select_option("select[name=account]", "hedge")
    button(page, "Filter").click()
    wait_for_chart(page)
    assert query_of(page) == {"account": ["hedge"], "from": [start], "to": [end]}
    assert page.evaluate("window.__sameDocument") is True
    assert int(chart_info(page)["pointCount"]) == 12
    # Only the hedge account's markers count: the alert is on main.
    assert chart_info(page)["markers"] == "0"
    expect(page.locator("#history tbody tr")).to_have_count(12)

    assert_no_console_errors_or_csp_violations(page)


def test_empty_range_and_failed_fetch_are_explained(page, live_server):
    page.goto(f"{live_server.url}/positions/BTC?from=2020-01-01T00:00&to=2020-01-02T00:00")
    wait_for_chart(page, "empty")
    expect(page.locator(f"{CHART} .chart-message")).to_have_text("No snapshots in this range.")
    expect(page.locator(f"{CHART} .chart-plot")).to_be_hidden()

    page.route("**/series?*", lambda route: route.fulfill(status=500, body="boom"))
    button(page, "1 h").click()
    wait_for_chart(page, "error")
    message = page.locator(f"{CHART} .chart-message")
    expect(message).to_be_visible()
    expect(message).to_have_text("Could not load the chart: the server answered 500.")
    expect(message).to_have_attribute("role", "alert")

    # Signed out meanwhile: data and table come back as the login page, and both say so.
    page.unroute("**/series?*")
    page.context.clear_cookies()
    button(page, "24 h").click()
    wait_for_chart(page, "error")
    expect(message).to_contain_text("the session may have ended")
    expect(page.locator("#history-results [role=alert]")).to_contain_text(
        "Could not load the snapshots table"
    )

    assert_no_console_errors_or_csp_violations(page, allowed=["status of 500", "status of 401"])


def test_chart_follows_the_width_of_a_phone_screen(page, artifacts_dir):
    wide = page.locator(f"{CHART} canvas").bounding_box()["width"]
    page.set_viewport_size({"width": 375, "height": 740})
    page.wait_for_function(
        "() => { const canvas = document.querySelector('#chart canvas');"
        " return canvas !== null && canvas.getBoundingClientRect().width < 375; }"
    )
    canvas = page.locator(f"{CHART} canvas").bounding_box()
    assert canvas["width"] < wide
    assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= 375
    assert page.locator(CHART).evaluate("el => el.scrollWidth <= el.clientWidth")
    assert line_pixels(page, MAIN_RGB) > 50
    page.screenshot(
        caret="initial", path=artifacts_dir / "chart-history-375px.png", full_page=False
    )

    assert_no_console_errors_or_csp_violations(page)


# The limit line's colour in chart.css (--chart-limit).
LIMIT_RGB = (0xDC, 0x26, 0x26)


def longest_row_run(page, rgb) -> int:
    """The most pixels near `rgb` in any one row of the canvas: a horizontal line's length."""
    return page.locator(f"{CHART} canvas").evaluate(
        """(canvas, rgb) => {
          const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let best = 0;
          for (let y = 0; y < canvas.height; y++) {
            let n = 0;
            for (let x = 0; x < canvas.width; x++) {
              const i = (y * canvas.width + x) * 4;
              const near = (k) => Math.abs(d[i + k] - rgb[k]) < 30;
              if (d[i + 3] > 200 && near(0) && near(1)
                  && near(2)) n++;
            }
            best = Math.max(best, n);
          }
          return best;
        }""",
        list(LIMIT_RGB),
    )


def rule_id(live_server) -> int:
    with live_server.app.app_context():
        return db.session.execute(
            db.select(AlertRule.id).where(AlertRule.name == RULE)
        ).scalar_one()


def test_chart_draws_the_limit_line_and_shades_when_the_alert_fired(page, live_server):
    button(page, "24 h").click()
    wait_for_chart(page)
    info = chart_info(page)
    assert (info["limits"], info["spans"], info["metric"]) == ("1", "1", "amount")
    canvas_width = page.locator(f"{CHART} canvas").evaluate("c => c.width")
    # A line across the plot (markers are vertical: no row holds this many).
    assert longest_row_run(page, LIMIT_RGB) > canvas_width / 2

    # ?rule= keeps that rule's lines; another rule's id draws none.
    page.goto(f"{live_server.url}/positions/BTC?range=24h&rule={rule_id(live_server)}")
    wait_for_chart(page)
    assert chart_info(page)["limits"] == "1"
    page.goto(f"{live_server.url}/positions/BTC?range=24h&rule=987654")
    wait_for_chart(page)
    assert (chart_info(page)["limits"], chart_info(page)["spans"]) == ("0", "0")
    assert longest_row_run(page, LIMIT_RGB) < canvas_width / 4
    # Notional has no line of this amount rule.
    page.goto(f"{live_server.url}/positions/BTC?range=24h&chart=notional")
    wait_for_chart(page)
    assert (chart_info(page)["metric"], chart_info(page)["limits"]) == ("notional", "0")
    # A link to a notional rule's chart opens on notional, where its line is.
    with live_server.app.app_context():
        cap = AlertRule(name="BTC cap", kind=RuleKind.NOTIONAL_ABOVE, threshold=Decimal("3000"))
        db.session.add(cap)
        db.session.commit()
        cap_id = cap.id
    page.goto(f"{live_server.url}/positions/BTC?range=24h&rule={cap_id}")
    wait_for_chart(page)
    assert (chart_info(page)["metric"], chart_info(page)["limits"]) == ("notional", "1")
    expect(button(page, "Notional")).to_have_attribute("aria-pressed", "true")

    assert_no_console_errors_or_csp_violations(page)


def test_overlay_url_and_a_fixed_window_from_the_element(page, live_server, seeded):
    """What the alert detail page and the rule preview give the chart element."""
    now = seeded["now"]
    start, end = now - timedelta(hours=4), now - timedelta(hours=1)
    window = json.dumps([start.isoformat(), end.isoformat()])
    page.add_init_script(
        f"const [from, to] = {window};"
        """new MutationObserver((_, observer) => {
             const el = document.getElementById("chart");
             if (!el) return;
             el.dataset.overlayUrl = "/overlay-for-test.json";
             el.dataset.from = from;
             el.dataset.to = to;
             observer.disconnect();
           }).observe(document, { childList: true, subtree: true });"""
    )
    overlay = {
        "limits": [
            {"label": "preview", "value": "20", "metric": "amount", "kind": "limit", "rule_id": 0},
            {"label": "preview", "value": "10", "metric": "amount", "kind": "clear", "rule_id": 0},
        ],
        "spans": [
            {
                "from": (now - timedelta(hours=2)).isoformat(),
                "to": None,
                "label": "would fire",
                "kind": "preview",
            }
        ],
    }
    page.route("**/overlay-for-test.json", lambda route: route.fulfill(json=overlay))
    page.goto(f"{live_server.url}/positions/BTC?range=1h")
    wait_for_chart(page)
    info = chart_info(page)
    # The overlay's two lines and its span, instead of the document's own line and span.
    assert (info["limits"], info["spans"]) == ("2", "1")
    # The element's window, not the page's one hour.
    assert float(info["xMin"]) == start.timestamp()
    assert float(info["xMax"]) == end.timestamp()

    assert_no_console_errors_or_csp_violations(page)
