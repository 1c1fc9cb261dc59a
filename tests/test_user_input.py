"""Every page and download with from/to filters: a moment that has no place in UTC is a
400 that says so, never a 500 (app.user_input is the one parser; the chart's series and
the API have their own tests)."""

import pytest

from app.auth.models import Role, User
from app.extensions import db
from tests.conftest import client_as
from tests.positions.helpers import snap, store

FILTERED_PATHS = [
    "/positions/BTC",
    "/positions.csv?asset=BTC&",
    "/alerts/history",
    "/alerts/history.csv",
    "/admin/audit",
    "/admin/audit.csv",
]
# Each overflows on the way to UTC: typed in the viewer's zone (New York is behind UTC,
# Tokyo ahead of it) or written with its own offset.
OUT_OF_RANGE = [
    ("America/New_York", "9999-12-31T23:59"),
    ("Asia/Tokyo", "0001-01-01T00:00"),
    ("UTC", "9999-12-31T23:59:59-01:00"),
    ("UTC", "0001-01-01T00:00:00+00:14"),
]


@pytest.fixture
def admin_in(app):
    """A logged-in admin client, with the timezone the test sets."""
    store(app, [snap()])
    client = client_as(app, Role.ADMIN)

    def in_zone(zone):
        with app.app_context():
            db.session.execute(db.update(User).values(timezone=zone))
            db.session.commit()
        return client

    return in_zone


@pytest.mark.parametrize("zone, moment", OUT_OF_RANGE)
@pytest.mark.parametrize("path", FILTERED_PATHS)
@pytest.mark.parametrize("name", ["from", "to"])
def test_out_of_range_filter_is_a_400_saying_so(admin_in, path, zone, moment, name):
    separator = "" if path.endswith("&") else "?"
    response = admin_in(zone).get(f"{path}{separator}{name}={moment.replace('+', '%2B')}")
    assert response.status_code == 400
    assert "out of range" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", FILTERED_PATHS)
def test_digits_of_other_scripts_in_a_filter_are_refused(admin_in, path):
    full_width_year = "\uff12\uff10\uff12\uff16-03-01T12:00"  # strptime() reads it as 2026
    separator = "" if path.endswith("&") else "?"
    response = admin_in("UTC").get(f"{path}{separator}from={full_width_year}")
    assert response.status_code == 400
    assert "not ISO 8601" in response.get_data(as_text=True)
