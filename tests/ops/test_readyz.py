"""/readyz and the page banner: database, migrations and the alert worker's heartbeat."""

from datetime import timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import update

from app.alerts.models import WorkerHeartbeat
from app.db_types import utcnow
from app.extensions import db
from tests.conftest import PASSWORD, build_app, make_user


def run_worker_once(app):
    result = app.test_cli_runner().invoke(
        args=["alerts", "run", "--passes", "1", "--interval", "10"]
    )
    assert result.exit_code == 0, result.output


def age_heartbeats(app, seconds):
    with app.app_context():
        db.session.execute(
            update(WorkerHeartbeat).values(last_pass_at=utcnow() - timedelta(seconds=seconds))
        )
        db.session.commit()


def test_readyz_without_a_required_worker_is_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["alert_worker"] == "no alert worker required"


def test_readyz_fails_when_a_required_worker_never_ran(app):
    app.config["ALERT_WORKER_REQUIRED"] = True
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["alert_worker"] == "no alert worker has ever run"


def test_worker_pass_makes_readyz_ready_and_a_late_worker_makes_it_fail(app):
    app.config["ALERT_WORKER_REQUIRED"] = True
    run_worker_once(app)
    client = app.test_client()

    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["alert_worker_last_pass"]

    # Interval 10 s: three missed passes plus 30 s of grace is 60 s.
    age_heartbeats(app, 55)
    assert client.get("/readyz").status_code == 200
    age_heartbeats(app, 65)
    late = client.get("/readyz")
    assert late.status_code == 503
    assert late.get_json()["alert_worker"].startswith("last pass 6")


def test_pages_show_a_banner_while_the_worker_is_down(app, client, auth):
    make_user(app, "alice")
    run_worker_once(app)
    auth.login("alice", PASSWORD)
    assert b'data-testid="worker-banner"' not in client.get("/").data

    age_heartbeats(app, 600)

    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="worker-banner"' in page
    assert "The alert worker is not running (last pass 600 s ago)" in page


def test_rows_of_workers_gone_for_a_day_are_forgotten(app):
    run_worker_once(app)
    age_heartbeats(app, 2 * 24 * 3600)
    run_worker_once(app)
    with app.app_context():
        assert db.session.query(WorkerHeartbeat).count() == 1


def test_readyz_fails_until_migrations_are_at_head(sqlite_url):
    app = build_app(sqlite_url, READYZ_CHECK_MIGRATIONS=True)
    with app.app_context():
        upgrade()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    with app.app_context():
        downgrade(revision="-1")
    behind = client.get("/readyz")
    assert behind.status_code == 503
    assert "run flask db upgrade" in behind.get_json()["migrations"]
