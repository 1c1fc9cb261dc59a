"""Shared template filters."""

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import g, render_template_string, url_for
from markupsafe import escape

from app.auth.models import Role
from app.ops import assets
from app.templating import (
    FilterError,
    duration,
    exact,
    local_time,
    parse_local_datetime,
    utc_iso,
)
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
        local, utc = render_times(app, zone, moment)
        expected = moment.astimezone(zoneinfo.ZoneInfo(zone))
        assert local == expected.strftime("%Y-%m-%d %H:%M:%S %Z")
        assert utc == moment.replace(tzinfo=None).isoformat() + "Z"


def test_each_viewer_sees_a_moment_in_their_own_zone(app):
    moment = datetime(2026, 1, 31, 13, 0, 5, tzinfo=UTC)
    assert render_times(app, "Europe/Berlin", moment)[0] == "2026-01-31 14:00:05 CET"
    assert render_times(app, "Asia/Tokyo", moment)[0] == "2026-01-31 22:00:05 JST"
    same_instant = moment.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert render_times(app, "Europe/Berlin", same_instant) == (
        "2026-01-31 14:00:05 CET",
        "2026-01-31T13:00:05Z",
    )


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


def test_the_localtime_filter_shows_the_viewers_zone(app):
    moment = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
    with app.test_request_context("/"):
        g.viewer_timezone = zoneinfo.ZoneInfo("Europe/Berlin")
        assert render_template_string("{{ m|localtime }}", m=moment) == "2026-07-01 14:00:00 CEST"


def _layout_token(client) -> str:
    html = client.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


def test_the_layouts_csrf_token_is_accepted_only_in_its_own_session(app):
    alice = client_as(app, Role.VIEWER, "alice")
    bob = client_as(app, Role.VIEWER, "bob")
    token = _layout_token(alice)
    assert _layout_token(bob) != token
    assert bob.post("/logout", data={"csrf_token": token}).status_code == 400
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 302
    assert alice.get("/").status_code == 302  # logged out


@pytest.mark.parametrize(
    "text, zone, expected",
    [
        ("2026-01-31 14:00", "Europe/Berlin", datetime(2026, 1, 31, 13, 0, tzinfo=UTC)),
        ("2026-01-31", "Europe/Berlin", datetime(2026, 1, 30, 23, 0, tzinfo=UTC)),
        ("2026-07-01 09:30:15", "America/New_York", datetime(2026, 7, 1, 13, 30, 15, tzinfo=UTC)),
        ("2026-01-31T14:00", "UTC", datetime(2026, 1, 31, 14, 0, tzinfo=UTC)),
        ("2026-01-31 14:00+05:30", "Europe/Berlin", datetime(2026, 1, 31, 8, 30, tzinfo=UTC)),
        ("  2026-01-31 14:00  ", "Asia/Tokyo", datetime(2026, 1, 31, 5, 0, tzinfo=UTC)),
        ("", "UTC", None),
    ],
)
def test_a_typed_filter_is_read_as_iso_in_the_viewers_zone(app, text, zone, expected):
    with app.test_request_context("/"):
        g.viewer_timezone = zoneinfo.ZoneInfo(zone)
        assert parse_local_datetime(text, "from") == expected


@pytest.mark.parametrize("text", ["01/31/2026 14:00", "31.01.2026", "2026-01-31 25:00", "today"])
def test_a_filter_in_another_shape_is_refused_naming_the_iso_shape(app, text):
    with app.test_request_context("/"), pytest.raises(FilterError) as refused:
        parse_local_datetime(text, "to")
    assert "'to' must look like 2026-01-31 14:00 or 2026-01-31" in str(refused.value)
