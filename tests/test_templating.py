"""Shared template filters."""

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import g, render_template_string, url_for
from markupsafe import escape

from app import templating
from app.auth.models import Role
from app.ops import assets
from app.templating import duration, exact, local_time, utc_iso
from tests.conftest import client_as


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (45, "45s"),
        (300, "5m"),
        (192, "3m 12s"),
        (3600 * 2 + 300, "2h 5m"),
        (86400 * 4 + 3600, "4d 1h"),
        (86400, "1d"),
        (86400 + 59, "1d"),
        (59, "59s"),
        (60, "1m"),
        (3600, "1h"),
        (3600 + 59, "1h"),
        (3600 + 60, "1h 1m"),
        (86400 * 400 + 7200, "400d 2h"),
        (-5, "0s"),
    ],
)
def test_duration_shows_the_two_largest_units(seconds, text):
    assert duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    "text",
    [
        *("0", "-0.00", "62013.1234", "0.00001234", "0.0000001", "1E+3", "-1.5E-9"),
        *("123456789.0", "12345678901234567890.123456789012345678901234567890"),
        *("5E+40", "0E-12"),
    ],
)
def test_exact_is_the_plain_notation_of_every_digit_stored(text):
    value = Decimal(text)
    assert exact(value) == format(value, "f")
    assert "E" not in exact(value)
    assert exact(None) == ""


# Moments on both sides of daylight-saving changes, and a microsecond past a second.
MOMENTS = [
    datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, 0, 999_999, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 30, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, 1, 250_000, tzinfo=UTC),
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


def render_times(app, zone: str, moment: datetime) -> tuple[str, str]:
    with app.test_request_context("/"):
        g.viewer_timezone = zoneinfo.ZoneInfo(zone)
        return local_time(moment), utc_iso(moment)


@pytest.mark.parametrize("zone", ZONES)
def test_times_read_the_same_as_strftime_in_the_viewers_zone_and_utc(app, zone):
    for moment in MOMENTS:
        for _ in range(2):  # once formatted, once remembered
            local, utc = render_times(app, zone, moment)
            expected = moment.astimezone(zoneinfo.ZoneInfo(zone))
            assert local == expected.strftime("%Y-%m-%d %H:%M:%S %Z")
            assert utc == moment.replace(tzinfo=None).isoformat() + "Z"


def test_a_remembered_time_is_never_shown_in_another_viewers_zone(app):
    moment = datetime(2026, 1, 31, 13, 0, 5, tzinfo=UTC)
    assert render_times(app, "Europe/Berlin", moment)[0] == "2026-01-31 14:00:05 CET"
    assert render_times(app, "Asia/Tokyo", moment)[0] == "2026-01-31 22:00:05 JST"
    same_instant = moment.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert render_times(app, "Europe/Berlin", same_instant) == (
        "2026-01-31 14:00:05 CET",
        "2026-01-31T13:00:05Z",
    )


def test_template_urls_are_those_url_for_builds(app):
    calls = [
        ("positions.overview", {}),
        ("positions.history", {"asset": "BTC/USD"}),
        ("positions.history", {"asset": "BTC", "account": None, "range": "1h"}),
        ("positions.export_csv", {"asset": "ETH", "account": "main"}),
        ("static", {"filename": "css/app.css"}),
        ("positions.overview", {"_anchor": "top"}),
        ("positions.overview", {"_external": True}),
    ]
    cached = app.jinja_env.globals["url_for"]
    for script_root in ("", "/monitor"):
        with app.test_request_context("/", base_url=f"http://localhost{script_root}/"):
            for endpoint, values in calls:
                for _ in range(2):
                    assert cached(endpoint, **values) == url_for(endpoint, **values)
            assert cached("positions.overview") == f"{script_root}/"


def test_a_changed_static_file_gets_a_new_url_in_templates(app, monkeypatch):
    version = {"css/app.css": "aaaa"}
    monkeypatch.setattr(assets, "static_version", version.get)
    monkeypatch.setattr(assets, "RECHECK_SECONDS", 0.0)
    page = app.jinja_env.from_string("{{ static['css/app.css'] }}")
    with app.test_request_context("/"):
        assert page.render().endswith("?v=aaaa")
        version["css/app.css"] = "bbbb"
        assert page.render().endswith("?v=bbbb")


def test_template_static_urls_are_those_url_for_builds_under_each_script_root(app):
    page = app.jinja_env.from_string("{{ static['css/app.css'] }} {{ static['a&b.js'] }}")
    for script_root in ("", "/monitor"):
        with app.test_request_context("/", base_url=f"http://localhost{script_root}/"):
            for _ in range(2):
                expected = [url_for("static", filename=f) for f in ("css/app.css", "a&b.js")]
                assert page.render() == " ".join(str(escape(url)) for url in expected)
            assert page.render().startswith(f"{script_root}/static/css/app.css?v=")


def test_the_localtime_filter_shows_the_viewers_zone_with_and_without_a_page_context(app):
    moment = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
    with app.test_request_context("/"):
        g.viewer_timezone = zoneinfo.ZoneInfo("Europe/Berlin")
        template = app.jinja_env.from_string("{{ m|localtime }}")
        # Anonymous pages get no zone from the context processor: the request's is used.
        assert render_template_string("{{ m|localtime }}", m=moment) == "2026-07-01 14:00:00 CEST"
        tokyo = {templating.VIEWER_TZ_KEY: zoneinfo.ZoneInfo("Asia/Tokyo")}
        assert template.render(m=moment, **tokyo) == "2026-07-01 21:00:00 JST"


def _layout_token(client) -> str:
    html = client.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


def test_layout_csrf_token_is_signed_once_per_session_and_only_its_session_accepts_it(app):
    alice = client_as(app, Role.VIEWER, "alice")
    bob = client_as(app, Role.VIEWER, "bob")
    token = _layout_token(alice)
    assert _layout_token(alice) == token
    assert _layout_token(bob) != token
    assert bob.post("/logout", data={"csrf_token": token}).status_code == 400
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 302
    assert alice.get("/").status_code == 302  # logged out
