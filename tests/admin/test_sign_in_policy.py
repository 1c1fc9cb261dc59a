"""The sign-in policy page: admins only, CSRF, audited, and never locks the desk out."""

from app.admin.audit import Action
from app.auth.models import AuthPolicy, Role, User
from app.auth.policy import current_policy, second_factor_required
from app.extensions import db
from tests.admin.helpers import events, only_event, post
from tests.conftest import client_as, make_user

PAGE = "/admin/sign-in-policy"


def stored_policy(app) -> AuthPolicy | None:
    with app.app_context():
        row = db.session.get(AuthPolicy, 1)
        if row is not None:
            db.session.expunge(row)
        return row


def mark_break_glass(app, username):
    with app.app_context():
        db.session.execute(
            db.update(User).where(User.username == username).values(break_glass=True)
        )
        db.session.commit()


def test_default_policy_keeps_local_passwords_and_asks_no_second_factor(app):
    with app.app_context():
        policy = current_policy()
        assert policy.local_passwords is True
        assert policy.second_factor_roles == []
        assert db.session.get(AuthPolicy, 1) is None  # the default is not stored
        assert second_factor_required(User(username="x", role=Role.ADMIN)) is False


def test_page_shows_the_current_policy(any_app, admin):
    html = admin.get(PAGE).get_data(as_text=True)
    assert "Local passwords are <strong>on</strong>" in html
    assert "No role must use a second factor." in html
    assert 'href="/admin/sign-in-policy" aria-current=page' in html


def test_admin_requires_a_second_factor_for_roles_and_it_is_audited(any_app, admin):
    response = post(
        admin,
        PAGE,
        page=PAGE,
        local_passwords="y",
        second_factor_roles=["admin", "operator"],
    )
    assert response.status_code == 302
    assert response.location == PAGE
    policy = stored_policy(any_app)
    assert policy.second_factor_roles == ["operator", "admin"]
    assert policy.local_passwords is True
    assert policy.updated_by == "root"
    event = only_event(any_app, Action.SIGN_IN_POLICY)
    assert event.actor_name == "root"
    assert event.detail == {"second_factor_roles": {"from": [], "to": ["operator", "admin"]}}
    with any_app.app_context():
        assert second_factor_required(User(username="o", role=Role.OPERATOR))
        assert not second_factor_required(User(username="v", role=Role.VIEWER))
        assert not second_factor_required(
            User(username="c", role=Role.OPERATOR, oidc_subject="sub-1")
        )
    assert "A second factor is required for: <strong>operator, admin</strong>" in (
        admin.get(PAGE).get_data(as_text=True)
    )


def test_saving_the_same_policy_changes_and_audits_nothing(any_app, admin):
    response = post(admin, PAGE, page=PAGE, local_passwords="y")
    assert response.status_code == 302
    assert events(any_app, Action.SIGN_IN_POLICY) == []
    assert "Nothing changed." in admin.get(PAGE).get_data(as_text=True)


def test_local_passwords_stay_on_without_an_active_break_glass_admin(any_app, admin):
    response = post(admin, PAGE, page=PAGE)  # the checkbox unticked: switch them off
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "no active admin is marked break-glass" in html
    assert stored_policy(any_app) is None
    assert events(any_app, Action.SIGN_IN_POLICY) == []


def test_a_disabled_break_glass_admin_does_not_count(any_app, admin):
    make_user(any_app, "spare", role=Role.ADMIN, active=False)
    mark_break_glass(any_app, "spare")
    assert post(admin, PAGE, page=PAGE).status_code == 400
    assert stored_policy(any_app) is None


def test_local_passwords_switch_off_with_a_break_glass_admin(any_app, admin):
    mark_break_glass(any_app, "root")
    response = post(admin, PAGE, page=PAGE)
    assert response.status_code == 302
    assert stored_policy(any_app).local_passwords is False
    event = only_event(any_app, Action.SIGN_IN_POLICY)
    assert event.detail == {"local_sign_in": {"from": True, "to": False}}
    html = admin.get(PAGE).get_data(as_text=True)
    assert "Local passwords are <strong>off</strong>" in html
    assert ">root</a>" in html


def test_unknown_role_is_refused(any_app, admin):
    response = post(admin, PAGE, page=PAGE, local_passwords="y", second_factor_roles=["root"])
    assert response.status_code == 400
    assert stored_policy(any_app) is None


def test_post_without_csrf_is_refused(any_app, admin):
    response = admin.post(PAGE, data={"second_factor_roles": ["viewer"]})
    assert response.status_code == 400
    assert stored_policy(any_app) is None


def test_only_admins_see_or_change_the_policy(any_app):
    for role in (Role.VIEWER, Role.OPERATOR):
        client = client_as(any_app, role)
        assert client.get(PAGE).status_code == 403
        assert post(client, PAGE, page="/account", local_passwords="y").status_code == 403
    assert stored_policy(any_app) is None
    anonymous = any_app.test_client()
    assert anonymous.get(PAGE).location.startswith("/login?next=")
