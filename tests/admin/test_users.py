"""User administration: each change works, is audited and keeps an admin in charge."""

import re

from app.admin.audit import Action
from app.auth.models import Role, User
from app.auth.tokens import create_token
from app.extensions import db
from tests.admin.helpers import events, only_event, post, user
from tests.conftest import PASSWORD, Auth, change_password, make_user

NEW_PASSWORD = "a brand new password 42"


def shown_password(html: str) -> str:
    match = re.search(r'data-testid="one-time-password">([^<]+)<', html)
    assert match, "no one-time password on the page"
    return match.group(1)


def logged_in_as(app, username, password=PASSWORD):
    client = app.test_client()
    response = Auth(client).login(username=username, password=password)
    return client, response


def test_admin_creates_a_user_with_a_chosen_password(any_app, admin):
    chosen = "chosen initial pass 1"
    response = post(admin, "/admin/users", username="Carol", role="operator", password=chosen)
    assert response.status_code == 302
    carol = user(any_app, "carol")
    assert carol.role == Role.OPERATOR and carol.must_change_password is False
    event = only_event(any_app, Action.USER_CREATE, chosen)
    assert (event.actor_name, event.target) == ("root", "user:carol")
    assert event.actor_id == user(any_app, "root").id
    assert event.detail["role"] == "operator"
    assert logged_in_as(any_app, "carol", chosen)[1].location == "/"


def test_admin_creates_a_user_with_a_generated_password_shown_once(any_app, admin):
    response = post(
        admin, "/admin/users", username="dave", role="viewer", must_change_password="y"
    )
    assert response.status_code == 200
    generated = shown_password(response.get_data(as_text=True))
    assert len(generated) >= 12
    assert generated not in admin.get("/admin/users").get_data(as_text=True)
    only_event(any_app, Action.USER_CREATE, generated)
    _, login = logged_in_as(any_app, "dave", generated)
    assert login.location == "/account"


def test_bad_new_user_is_refused_with_the_form_kept(any_app, admin):
    make_user(any_app, "erin")
    taken = post(admin, "/admin/users", username="ERIN", role="operator", password="")
    assert taken.status_code == 400
    html = taken.get_data(as_text=True)
    assert "exists" in html and 'value="ERIN"' in html
    assert re.search(r'<option selected value="operator">|value="operator" selected', html)
    short = post(admin, "/admin/users", username="frank", role="viewer", password="short")
    assert short.status_code == 400 and "at least" in short.get_data(as_text=True)
    assert 'value="frank"' in short.get_data(as_text=True)
    with any_app.app_context():
        assert db.session.execute(db.select(User).where(User.username == "frank")).first() is None
    assert events(any_app, Action.USER_CREATE) == []


def test_admin_changes_a_role(any_app, admin):
    bob = make_user(any_app, "bob")
    response = post(admin, f"/admin/users/{bob}/role", role="operator")
    assert response.status_code == 302
    assert user(any_app, "bob").role == Role.OPERATOR
    event = only_event(any_app, Action.USER_ROLE)
    assert event.target == "user:bob" and event.detail == {"from": "viewer", "to": "operator"}


def test_admin_cannot_remove_their_own_admin_role_or_disable_themselves(any_app, admin):
    root = user(any_app, "root").id
    demote = post(admin, f"/admin/users/{root}/role", role="viewer")
    assert demote.status_code == 400 and "yourself" in demote.get_data(as_text=True)
    disable = post(admin, f"/admin/users/{root}/disable")
    assert disable.status_code == 400 and "yourself" in disable.get_data(as_text=True)
    root_now = user(any_app, "root")
    assert root_now.role == Role.ADMIN and root_now.active
    assert events(any_app, Action.USER_ROLE) == events(any_app, Action.USER_DISABLE) == []
    assert admin.get("/admin/users").status_code == 200


def test_disabling_a_user_ends_their_live_session_now(any_app, admin):
    bob = make_user(any_app, "bob")
    bob_client, _ = logged_in_as(any_app, "bob")
    assert bob_client.get("/account").status_code == 200
    response = post(admin, f"/admin/users/{bob}/disable")
    assert response.status_code == 302
    assert bob_client.get("/account").status_code == 302
    assert logged_in_as(any_app, "bob")[1].status_code == 200  # the login form again
    event = only_event(any_app, Action.USER_DISABLE)
    assert event.target == "user:bob" and event.detail == {"sessions_ended": 1}

    assert post(admin, f"/admin/users/{bob}/enable").status_code == 302
    assert user(any_app, "bob").active
    assert only_event(any_app, Action.USER_ENABLE).target == "user:bob"
    assert logged_in_as(any_app, "bob")[1].status_code == 302


def test_reset_password_forces_a_change_and_the_temporary_one_works_once(any_app, admin):
    bob = make_user(any_app, "bob")
    with any_app.app_context():
        _, secret = create_token(db.session.get(User, bob), "feed", ["read"])
        db.session.commit()
    old_client, _ = logged_in_as(any_app, "bob")
    response = post(admin, f"/admin/users/{bob}/reset-password")
    assert response.status_code == 200
    temporary = shown_password(response.get_data(as_text=True))
    assert old_client.get("/account").status_code == 302  # signed out
    assert logged_in_as(any_app, "bob")[1].status_code == 200  # old password refused
    only_event(any_app, Action.PASSWORD_RESET, temporary)

    client, login = logged_in_as(any_app, "bob", temporary)
    assert login.location == "/account"
    for page in ("/", "/alerts/", "/positions/BTC"):
        assert client.get(page).location == "/account", page
    # API tokens are not affected by the reset.
    api = client.get("/api/v1/assets", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200

    changed = change_password(client, temporary, NEW_PASSWORD)
    assert changed.status_code == 302
    assert client.get("/").status_code == 200
    assert user(any_app, "bob").must_change_password is False
    assert logged_in_as(any_app, "bob", temporary)[1].status_code == 200  # refused now
    assert logged_in_as(any_app, "bob", NEW_PASSWORD)[1].location == "/"


def test_admin_revokes_a_users_session_and_token(any_app, admin):
    bob = make_user(any_app, "bob")
    bob_client, _ = logged_in_as(any_app, "bob")
    with any_app.app_context():
        token, secret = create_token(db.session.get(User, bob), "feed", ["read"])
        db.session.commit()
        token_id = token.id
    page = admin.get(f"/admin/users/{bob}").get_data(as_text=True)
    assert "feed" in page and secret not in page
    session_id = re.search(rf"/admin/users/{bob}/sessions/(\d+)/revoke", page).group(1)

    revoked = post(admin, f"/admin/users/{bob}/sessions/{session_id}/revoke")
    assert revoked.status_code == 302
    assert bob_client.get("/account").status_code == 302
    event = only_event(any_app, Action.SESSION_REVOKE)
    assert event.target == f"session:{session_id}" and event.actor_name == "root"

    bearer = {"Authorization": f"Bearer {secret}"}
    assert bob_client.get("/api/v1/assets", headers=bearer).status_code == 200
    assert post(admin, f"/admin/users/{bob}/tokens/{token_id}/revoke").status_code == 302
    api = bob_client.get("/api/v1/assets", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 401
    assert only_event(any_app, Action.TOKEN_REVOKE, secret).target == f"token:{token_id}"
    again = post(admin, f"/admin/users/{bob}/tokens/{token_id}/revoke")
    assert again.status_code == 404


def test_usernames_with_markup_are_shown_escaped(any_app, admin):
    make_user(any_app, "<script>x</script>")
    html = admin.get("/admin/users").get_data(as_text=True)
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    audit = admin.get("/admin/audit").get_data(as_text=True)
    assert "<script>x" not in audit
