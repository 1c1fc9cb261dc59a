"""A history page shows what is stored now, in the viewer's zone, with its own links."""

import re

from app.auth.models import Role, User
from app.extensions import db
from tests.alerts.helpers import firing_btc_alert
from tests.conftest import ParsedPage, client_as
from tests.positions.helpers import snap, store
from tests.positions.test_pages import exact_cells


def set_zone(app, username, zone):
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == username).values(timezone=zone))
        db.session.commit()


def zone_labels(html: str) -> list[str]:
    return re.findall(r"(?:From|To|Time) \(([^)]*)\)", html)


def test_a_new_snapshot_shows_though_the_rest_of_the_page_is_the_same(app):
    store(app, [snap(minutes=m) for m in range(3)])
    alice = client_as(app, Role.VIEWER, "alice")
    assert len(exact_cells(alice.get("/positions/BTC").text, "history")) == 3
    store(app, [snap(minutes=3, amount="9.5")])
    rows = exact_cells(alice.get("/positions/BTC").text, "history")
    assert len(rows) == 4 and rows[0][2] == "9.5"


def test_an_alert_on_the_asset_shows_on_the_next_visit(app):
    store(app, [snap(minutes=m) for m in range(3)])
    alice = client_as(app, Role.VIEWER, "alice")
    assert 'id="asset-alerts"' not in alice.get("/positions/BTC").text
    firing_btc_alert(app)
    page = alice.get("/positions/BTC").text
    assert 'id="asset-alerts"' in page
    section = re.search(r'<section id="asset-alerts".*?</section>', page, re.S).group(0)
    text = " ".join(re.sub(r"<[^>]+>", " ", section).split())
    assert "firing BTC too big on main — value 12.5 BTC since" in text
    # The alert links to its own page.
    hrefs = [a["href"] for a in ParsedPage(section).elements("a")]
    assert any(re.fullmatch(r"/alerts/\d+", href) for href in hrefs), hrefs


def test_each_viewer_reads_and_names_times_in_their_own_zone(app):
    store(app, [snap()])
    alice = client_as(app, Role.VIEWER, "alice")
    kenji = client_as(app, Role.VIEWER, "kenji")
    set_zone(app, "kenji", "Asia/Tokyo")
    assert zone_labels(alice.get("/positions/BTC").text) == ["UTC", "UTC", "UTC"]
    assert zone_labels(kenji.get("/positions/BTC").text) == ["Asia/Tokyo"] * 3


def test_the_utc_toggle_names_utc_where_times_are_shown_and_read_in_utc(app):
    store(app, [snap()])
    kenji = client_as(app, Role.VIEWER, "kenji")
    set_zone(app, "kenji", "Asia/Tokyo")
    token = re.search(r'name="csrf-token" content="([^"]+)"', kenji.get("/").text).group(1)
    kenji.post("/account/utc", data={"csrf_token": token, "next": "/"})
    page = kenji.get("/positions/BTC").text
    assert zone_labels(page) == ["UTC", "UTC", "UTC"]
    assert exact_cells(page, "history")[0][0].endswith(" UTC")


def test_filters_and_pages_each_get_their_own_links(app):
    store(app, [snap(account=a, minutes=m) for m in range(3) for a in ("main", "hedge")])
    alice = client_as(app, Role.VIEWER, "alice")
    main = ParsedPage(alice.get("/positions/BTC?account=main").text)
    both = ParsedPage(alice.get("/positions/BTC").text)
    (main_csv,) = [a["href"] for a in main.elements("a") if "download" in a]
    (both_csv,) = [a["href"] for a in both.elements("a") if "download" in a]
    assert main_csv.endswith("asset=BTC&account=main") and both_csv.endswith("asset=BTC")
    selected = [o["value"] for o in main.elements("option") if "selected" in o]
    assert selected == ["main"]


def test_another_assets_alert_counts_in_the_badge_but_is_not_listed(app):
    firing_btc_alert(app, snap(asset="ETH"))
    alice = client_as(app, Role.VIEWER, "alice")
    page = alice.get("/positions/ETH").text
    assert re.search(r'data-testid="firing-count">1<', page)
    assert 'id="asset-alerts"' not in page
    assert 'id="asset-alerts"' in alice.get("/positions/BTC").text
