"""The navigation bar: each viewer's own name, links, firing count and UTC toggle."""

import re

from app.auth.models import Role, User
from app.extensions import db
from tests.alerts.helpers import firing_btc_alert
from tests.conftest import ParsedPage, client_as
from tests.positions.helpers import snap, store


def current_user_link(html: str) -> str:
    return re.search(r'data-testid="current-user">([^<]*)<', html).group(1)


def utc_toggle_return_path(html: str) -> str:
    page = ParsedPage(html)
    (field,) = [e for e in page.elements("input") if e.get("name") == "next"]
    return field["value"]


def test_each_viewer_sees_their_own_name_role_and_links(app):
    alice = client_as(app, Role.VIEWER, "alice")
    root = client_as(app, Role.ADMIN, "root")
    alice_page, root_page = alice.get("/").text, root.get("/").text
    assert current_user_link(alice_page) == "alice"
    assert current_user_link(root_page) == "root"
    assert ">Admin</a>" not in alice_page and ">Admin</a>" in root_page


def test_a_new_firing_count_or_role_shows_on_the_next_page(app):
    alice = client_as(app, Role.VIEWER, "alice")
    page = alice.get("/").text
    assert ">Admin</a>" not in page and 'data-testid="firing-count"' not in page
    firing_btc_alert(app, snap(asset="ETH"))
    assert re.search(r'data-testid="firing-count">1<', alice.get("/").text)
    with app.app_context():
        db.session.execute(db.update(User).values(role=Role.ADMIN))
        db.session.commit()
    assert ">Admin</a>" in alice.get("/").text


def test_the_utc_toggle_returns_to_each_pages_own_path(app):
    store(app, [snap(account='a"<b>')])
    alice = client_as(app, Role.VIEWER, "alice")
    path = "/positions/BTC?account=a%22%3Cb%3E"
    page = alice.get(path).text
    assert utc_toggle_return_path(page) == path
    assert utc_toggle_return_path(alice.get("/").text) == "/"
    assert utc_toggle_return_path(alice.get(path).text) == path


def test_the_bar_under_a_script_root_links_there(app):
    alice = client_as(app, Role.VIEWER, "alice")
    for root in ("", "/monitor"):
        page = alice.get("/", base_url=f"http://localhost{root}/").text
        assert f'href="{root}/alerts/"' in page
        assert f'action="{root}/logout"' in page
