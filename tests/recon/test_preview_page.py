"""Previewing a definition as typed on the form: a replay on the page and its chart."""

import html
import re
from datetime import datetime

from app.auth.models import Role
from app.extensions import db
from app.recon.models import ReconTransition
from tests.conftest import client_as
from tests.recon.helpers import at, book, ingest, venue
from tests.recon.test_pages_define import NEW, form_data, stored


def a_break(app):
    """BTC/XBT agree, the venue reports 7 against the book's 5 for 90 s, then 5 again."""
    ingest(
        app,
        book("BTC", "5", seconds=-300),
        venue("XBT", "5", seconds=-300),
        venue("XBT", "7", seconds=-200),
        book("BTC", "5", seconds=-190),
        venue("XBT", "5", seconds=-100),
        now=at(0),
    )


def preview_form(client, **overrides):
    """The define page's form, BTC only, exact match and no grace, sent to preview."""
    return form_data(
        client,
        **{
            "action": "preview",
            "preview_days": "1",
            "tolerance_rel": "",
            "grace_seconds": "0",
            "assets-0-multiplier": "",
            "assets-0-tolerance_abs": "",
            "assets-1-asset": "",
            **overrides,
        },
    )


def transitions(app) -> int:
    with app.app_context():
        return db.session.execute(db.select(db.func.count(ReconTransition.id))).scalar_one()


def test_admin_previews_a_typed_definition_without_saving_it(app):
    a_break(app)
    admin = client_as(app, Role.ADMIN)
    page = admin.post(NEW, data=preview_form(admin))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="preview"' in text
    assert "<strong>3</strong> change(s) of state" in text
    assert "<strong>1</strong> break(s) in 1 asset(s)" in text
    rows = re.findall(r"<tr><td class=\"time\".*?</tr>", text, re.S)
    assert [re.search(r"(\w+)</span>", row).group(1) for row in rows] == [
        "matched",
        "break",
        "matched",
    ]
    # Nothing was saved: no reconciliation, no state, no history.
    assert stored(app) is None and transitions(app) == 0
    # Everything typed is still on the form.
    assert 'value="main@binance"' in text and 'value="XBT"' in text


def test_the_preview_chart_shades_where_the_typed_definition_would_have_broken(app):
    a_break(app)
    admin = client_as(app, Role.ADMIN)
    text = admin.post(NEW, data=preview_form(admin)).get_data(as_text=True)
    url = html.unescape(re.search(r'data-series-url="([^"]+)"', text).group(1))
    assert url.startswith("/recon/definitions/preview/series?")
    document = admin.get(url).get_json()
    assert [s["account"] for s in document["series"]] == ["main BTC", "main@binance XBT"]
    assert [p[1] for p in document["series"][1]["points"]] == ["5", "7", "5"]
    [span] = document["spans"]
    assert datetime.fromisoformat(span["from"]) == at(-190)
    assert datetime.fromisoformat(span["to"]) == at(-100)
    # A tolerance of 2 typed instead: the same history never breaks.
    wider = admin.get(url + "&tolerance_abs=2").get_json()
    assert wider["spans"] == []


def test_a_preview_of_a_definition_that_cannot_mean_anything_explains_why(app):
    admin = client_as(app, Role.ADMIN)
    page = admin.post(NEW, data=preview_form(admin, right_account="main"))
    assert page.status_code == 400
    assert "The two sides must be different accounts." in page.get_data(as_text=True)
    assert stored(app) is None


def test_the_preview_series_refuses_bad_input_and_other_roles(app):
    admin = client_as(app, Role.ADMIN)
    base = (
        "/recon/definitions/preview/series?name=x&left_account=main&right_account=v"
        "&grace_seconds=0&left_max_age_seconds=60&right_max_age_seconds=60&severity=critical"
    )
    assert admin.get(base + "&assets-0-asset=BTC").status_code == 200
    bad = admin.get(base + "&assets-0-asset=BTC&tolerance_abs=lots")
    assert bad.status_code == 400 and "tolerance_abs" in bad.get_json()["fields"]
    assert admin.get(base).status_code == 400  # no asset
    same = admin.get(base.replace("right_account=v", "right_account=main") + "&assets-0-asset=B")
    assert same.status_code == 400
    assert same.get_json()["message"] == "The two sides must be different accounts."
    for role in (Role.VIEWER, Role.OPERATOR):
        assert client_as(app, role).get(base + "&assets-0-asset=BTC").status_code == 403
