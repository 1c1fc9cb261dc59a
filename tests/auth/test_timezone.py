"""Timezones: the browser's until the user chooses one, and the quick UTC toggle."""

from datetime import UTC, datetime

import pytest

from app.auth.models import User
from app.extensions import db
from tests.conftest import csrf_token_from
from tests.positions.helpers import snap, store

REPORT = "/account/timezone/browser"


def user_zone(app) -> tuple[str, bool]:
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username="alice")).scalar_one()
        return user.timezone, user.timezone_chosen


def report(client, zone, token=None):
    token = token if token is not None else csrf_token_from(client, "/account")
    return client.post(
        REPORT,
        json={"timezone": zone},
        headers={"X-CSRFToken": token, "Accept": "application/json"},
    )


def test_pages_ask_for_the_browsers_zone_until_one_is_chosen(app, logged_in):
    html = logged_in.get("/").get_data(as_text=True)
    assert f'data-timezone-report="{REPORT}"' in html
    assert 'data-timezone="UTC"' in html

    token = csrf_token_from(logged_in, "/account")
    logged_in.post("/account/timezone", data={"tz-csrf_token": token, "tz-timezone": "UTC"})

    assert "data-timezone-report" not in logged_in.get("/").get_data(as_text=True)


def test_the_browsers_zone_is_taken_while_none_was_chosen(app, logged_in):
    response = report(logged_in, "Asia/Tokyo")

    assert response.status_code == 200
    assert response.get_json() == {"timezone": "Asia/Tokyo", "applied": True}
    assert user_zone(app) == ("Asia/Tokyo", False)
    store(app, [snap(at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))])
    html = logged_in.get("/").get_data(as_text=True)
    assert "2026-03-01 21:00:00 JST" in html
    assert 'title="2026-03-01T12:00:00Z"' in html


def test_a_chosen_zone_is_kept_whatever_the_browser_says(app, logged_in):
    token = csrf_token_from(logged_in, "/account")
    response = logged_in.post(
        "/account/timezone", data={"tz-csrf_token": token, "tz-timezone": "Europe/Paris"}
    )
    assert response.status_code == 302
    assert user_zone(app) == ("Europe/Paris", True)

    response = report(logged_in, "Asia/Tokyo")

    assert response.get_json() == {"timezone": "Europe/Paris", "applied": False}
    assert user_zone(app) == ("Europe/Paris", True)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", 42, None])
def test_an_unknown_zone_is_refused(app, logged_in, zone):
    response = report(logged_in, zone)

    assert response.status_code == 400
    assert user_zone(app) == ("UTC", False)


def test_the_report_needs_the_csrf_token(app, logged_in):
    response = report(logged_in, "Asia/Tokyo", token="forged")

    assert response.status_code == 400
    assert user_zone(app) == ("UTC", False)


def test_the_report_needs_a_login(app, client, viewer):
    response = report(client, "Asia/Tokyo", token=csrf_token_from(client, "/login"))

    assert response.status_code == 401
    assert user_zone(app) == ("UTC", False)


def test_the_utc_toggle_switches_every_time_to_utc_and_back(app, logged_in):
    report(logged_in, "Asia/Tokyo")
    store(app, [snap(at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))])
    token = csrf_token_from(logged_in, "/account")

    response = logged_in.post("/account/utc", data={"csrf_token": token, "next": "/?x=1"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/?x=1"
    html = logged_in.get("/").get_data(as_text=True)
    assert "2026-03-01 12:00:00 UTC" in html
    assert "JST" not in html
    assert 'aria-pressed="true"' in html
    assert 'data-testid="display-timezone">UTC<' in html

    logged_in.post("/account/utc", data={"csrf_token": token, "next": "/"})

    html = logged_in.get("/").get_data(as_text=True)
    assert "2026-03-01 21:00:00 JST" in html
    assert 'aria-pressed="false"' in html


def test_the_utc_toggle_stays_on_our_site_and_needs_the_csrf_token(app, logged_in):
    token = csrf_token_from(logged_in, "/account")

    response = logged_in.post(
        "/account/utc", data={"csrf_token": token, "next": "//evil.example/"}
    )
    assert response.headers["Location"] == "/"

    response = logged_in.post("/account/utc", data={"next": "/"})
    assert response.status_code == 400
    assert 'aria-pressed="true"' in logged_in.get("/").get_data(as_text=True)
