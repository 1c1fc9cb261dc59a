"""Every way of losing the database is a 503 with Retry-After; bugs stay 500s."""

from functools import partial

import pytest
from sqlalchemy import exc

from app.auth.access import public
from tests.conftest import build_app


def lost(kind, message, **kwargs):
    return partial(kind, "SELECT 1", {}, Exception(message), **kwargs)


UNAVAILABLE = {
    "locked": lost(exc.OperationalError, "database is locked"),
    "refused": lost(exc.OperationalError, "connection refused"),
    # psycopg reports some disconnects as other error classes; SQLAlchemy marks them.
    "interface_invalidated": lost(
        exc.InterfaceError, "the connection is closed", connection_invalidated=True
    ),
    "idle_timeout_invalidated": lost(
        exc.InternalError,
        "terminating connection due to idle-in-transaction timeout",
        connection_invalidated=True,
    ),
    "pool_exhausted": partial(exc.TimeoutError, "QueuePool limit of size 5 overflow 10 reached"),
}
BUGS = {
    "integrity": lost(exc.IntegrityError, "UNIQUE constraint failed"),
    "interface_bug": lost(exc.InterfaceError, "Error binding parameter 1"),
    "programming": lost(exc.ProgrammingError, "no such column: nope"),
}


@pytest.fixture
def raising_app(sqlite_url):
    app = build_app(sqlite_url)

    @public
    def fail(name):
        raise {**UNAVAILABLE, **BUGS}[name]()

    app.add_url_rule("/fail/<name>", view_func=fail)
    return app


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_losing_the_database_is_a_503_json_with_retry_after(raising_app, name):
    response = raising_app.test_client().get(
        f"/fail/{name}", headers={"Accept": "application/json"}
    )
    assert response.status_code == 503
    assert response.get_json()["error"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_losing_the_database_is_a_503_page_with_retry_after(raising_app, name):
    response = raising_app.test_client().get(f"/fail/{name}")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("name", sorted(BUGS))
def test_database_errors_that_are_bugs_stay_500_with_a_reference(raising_app, name):
    response = raising_app.test_client().get(
        f"/fail/{name}", headers={"Accept": "application/json"}
    )
    assert response.status_code == 500
    assert response.get_json()["reference"]
    assert "Retry-After" not in response.headers
