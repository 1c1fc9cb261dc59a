"""Alert history page and CSV; the asset page lists its alerts; the live table."""

import csv
import io
import re
from datetime import timedelta

import pytest

from app.alerts.models import RuleKind
from app.db_types import utcnow
from tests.alerts.helpers import add_rule
from tests.positions.helpers import snap, store


@pytest.fixture
def transitions(app):
    add_rule(app, "BTC cap", "10")
    add_rule(app, "=cmd|' /C calc'!A0", "0", kind=RuleKind.POSITION_BELOW, asset="ETH")
    now = utcnow()
    store(app, [snap(asset="BTC", at=now, amount="11"), snap(asset="ETH", at=now, amount="-1")])
    store(app, [snap(asset="BTC", at=now + timedelta(seconds=1), amount="1")])


def test_history_lists_every_transition_newest_first(logged_in, transitions):
    html = logged_in.get("/alerts/history").get_data(as_text=True)
    # The nav's badge says "firing" too: look inside the history table only.
    table = html[html.index('<table id="alert-history"') :]
    assert table.index("firing</span>") > table.index("resolved</span>")
    assert html.count("<tr>") == 4  # header + 3 transitions


def test_history_filters(logged_in, transitions):
    by_state = logged_in.get("/alerts/history?state=resolved").get_data(as_text=True)
    assert by_state.count("<tr>") == 2
    by_asset = logged_in.get("/alerts/history?asset=ETH").get_data(as_text=True)
    assert by_asset.count("<tr>") == 2 and "main/ETH" in by_asset
    assert logged_in.get("/alerts/history?state=exploded").status_code == 400
    assert logged_in.get("/alerts/history?from=soon").status_code == 400
    later = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No transitions match" in logged_in.get(f"/alerts/history?from={later}").text


def test_history_csv_is_filtered_and_safe_for_spreadsheets(logged_in, transitions):
    response = logged_in.get("/alerts/history.csv?asset=ETH")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["at", "rule", "severity", "account", "asset", "from", "to", "value"]
    assert len(rows) == 2 and rows[1][1].startswith("'=") and rows[1][7] == "-1"


def test_asset_page_lists_its_alerts(logged_in, transitions):
    html = logged_in.get("/positions/ETH").get_data(as_text=True)
    assert 'id="asset-alerts"' in html and "firing</span>" in html
    btc = logged_in.get("/positions/BTC").get_data(as_text=True)
    # Each alert links to its own page.
    assert re.search(r'resolved</span> <a href="/alerts/\d+">BTC cap</a>', btc)


def test_htmx_poll_gets_only_the_table(logged_in, transitions):
    page = logged_in.get("/alerts/").get_data(as_text=True)
    assert 'hx-trigger="live-refresh"' in page and "<html" in page
    fragment = logged_in.get("/alerts/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="alerts-live"') and "<html" not in fragment
    assert "main/ETH" in fragment
