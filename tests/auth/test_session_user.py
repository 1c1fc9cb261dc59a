"""The session check reads the user afresh on every request, without ORM objects."""

from app.auth.models import Role, User
from app.extensions import db


def _set_user(app, user_id, **changes):
    with app.app_context():
        user = db.session.get(User, user_id)
        for name, value in changes.items():
            setattr(user, name, value)
        db.session.commit()


def test_a_role_change_applies_to_the_live_sessions_next_request(app, client, auth, viewer):
    auth.login()
    assert client.get("/admin/users").status_code == 403
    _set_user(app, viewer, role=Role.ADMIN)
    assert client.get("/admin/users").status_code == 200
    _set_user(app, viewer, role=Role.VIEWER)
    assert client.get("/admin/users").status_code == 403


def test_a_user_disabled_in_the_database_is_anonymous_on_the_next_request(
    app, client, auth, viewer
):
    auth.login()
    assert client.get("/").status_code == 200
    _set_user(app, viewer, active=False)
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_a_timezone_change_shows_on_the_next_page(app, client, auth, viewer):
    _set_user(app, viewer, timezone="Asia/Tokyo", timezone_chosen=True)
    auth.login()
    assert 'data-testid="display-timezone">Asia/Tokyo<' in client.get("/").get_data(as_text=True)
    _set_user(app, viewer, timezone="Europe/Paris")
    assert 'data-testid="display-timezone">Europe/Paris<' in client.get("/").get_data(as_text=True)
