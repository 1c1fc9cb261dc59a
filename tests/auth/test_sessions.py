"""Server-side sessions: fresh on login, revocable, with idle and absolute limits."""

from datetime import timedelta

from app.auth.models import Role, User, UserSession
from app.auth.sessions import hash_token
from app.db_types import utcnow
from app.extensions import db
from tests.conftest import (
    PASSWORD,
    Auth,
    build_app,
    change_password,
    csrf_token_from,
    make_user,
    writes_during,
)


def session_rows(app):
    with app.app_context():
        return db.session.execute(db.select(UserSession).order_by(UserSession.id)).scalars().all()


def cookie_value(client, app):
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return cookie.value if cookie else None


def test_login_issues_a_fresh_session_and_drops_pre_login_data(app, client, auth, viewer):
    with client.session_transaction() as pre:
        pre["planted"] = "by an attacker"
        pre["_user_id"] = "forged"
    before = cookie_value(client, app)
    auth.login()
    assert cookie_value(client, app) != before
    with client.session_transaction() as post:
        assert "planted" not in post
        assert post["_user_id"] != "forged"


def test_pages_after_login_leave_the_cookie_as_the_login_set_it(app, client, auth, viewer):
    auth.login()
    login_cookie = cookie_value(client, app)
    for path in ("/", "/account"):
        response = client.get(path)
        assert response.status_code == 200
        set_cookies = response.headers.getlist("Set-Cookie")
        assert not [c for c in set_cookies if c.startswith(app.config["SESSION_COOKIE_NAME"])]
    assert cookie_value(client, app) == login_cookie


def test_a_csrf_token_from_before_login_is_refused_after_it(app, client, auth, viewer):
    pre_login = csrf_token_from(client, "/login")
    auth.login()
    assert client.post("/logout", data={"csrf_token": pre_login}).status_code == 400
    assert client.get("/").status_code == 200  # still logged in


def test_session_token_is_random_and_stored_only_as_hash(app, client, auth, viewer):
    auth.login()
    with client.session_transaction() as s:
        token = s["_user_id"]
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    (row,) = session_rows(app)
    assert row.token_hash == hash_token(token) and token not in row.token_hash


def test_logout_then_replaying_the_old_cookie_is_anonymous(app, client, auth, viewer):
    auth.login()
    old_cookie = cookie_value(client, app)
    auth.logout()
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], old_cookie)
    assert replay.get("/").status_code == 302
    assert session_rows(app)[0].revoked_reason == "logout"


def test_logout_requires_post_with_csrf(app, client, auth, viewer):
    auth.login()
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_password_change_signs_out_the_other_browser(app, viewer):
    first, second = app.test_client(), app.test_client()
    Auth(first).login()
    Auth(second).login()
    response = change_password(first, PASSWORD, "a brand new passphrase")
    assert response.status_code == 302
    assert first.get("/").status_code == 200
    assert second.get("/").status_code == 302
    Auth(first).logout()
    assert Auth(first).login(password="a brand new passphrase").status_code == 302


def test_password_change_needs_the_current_password(app, client, auth, viewer):
    auth.login()
    response = change_password(client, "not my password", "a brand new passphrase")
    assert response.status_code == 400
    assert "Current password is wrong" in response.get_data(as_text=True)
    auth.logout()
    assert auth.login().status_code == 302


def test_password_change_enforces_the_policy(app, client, auth, viewer):
    auth.login()
    response = change_password(client, PASSWORD, "short")
    assert response.status_code == 400
    assert "at least 12 characters" in response.get_data(as_text=True)


def test_disabling_a_user_ends_their_live_session(app, client, auth, viewer, runner):
    auth.login()
    assert client.get("/").status_code == 200
    result = runner.invoke(args=["users", "disable", "alice"])
    assert result.exit_code == 0
    assert client.get("/").status_code == 302


def _age_session(app, **changes):
    with app.app_context():
        row = db.session.execute(db.select(UserSession)).scalar_one()
        for key, value in changes.items():
            setattr(row, key, value)
        db.session.commit()


def test_idle_session_expires_server_side(app, client, auth, viewer):
    auth.login()
    _age_session(app, last_seen_at=utcnow() - timedelta(minutes=31))
    assert client.get("/").status_code == 302
    assert session_rows(app)[0].revoked_reason == "idle"


def test_active_session_within_idle_limit_stays(app, client, auth, viewer):
    auth.login()
    _age_session(app, last_seen_at=utcnow() - timedelta(minutes=29))
    assert client.get("/").status_code == 200
    # Being seen moves last_seen forward, so the session stays alive while used.
    assert utcnow() - session_rows(app)[0].last_seen_at < timedelta(minutes=1)


def test_live_refreshes_do_not_keep_an_unattended_session_alive(app, client, auth, viewer):
    auth.login()
    seen = utcnow() - timedelta(minutes=29)
    _age_session(app, last_seen_at=seen)
    refresh = {"HX-Request": "true", "X-Background-Refresh": "1"}

    assert client.get("/", headers=refresh).status_code == 200
    assert session_rows(app)[0].last_seen_at == seen

    _age_session(app, last_seen_at=utcnow() - timedelta(minutes=31))
    ended = client.get("/", headers=refresh)
    assert ended.status_code == 302 and ended.location.startswith("/login")
    assert session_rows(app)[0].revoked_reason == "idle"


def test_absolute_session_limit_ends_even_an_active_session(app, client, auth, viewer):
    auth.login()
    _age_session(app, created_at=utcnow() - timedelta(hours=12, minutes=1))
    assert client.get("/").status_code == 302
    assert session_rows(app)[0].revoked_reason == "expired"


def test_sign_out_one_other_session_and_all_others(app, viewer):
    me, phone, laptop = app.test_client(), app.test_client(), app.test_client()
    for c in (me, phone, laptop):
        Auth(c).login()
    rows = session_rows(app)
    html = me.get("/account").get_data(as_text=True)
    assert html.count("Sign out</button>") == 2 and "this session" in html
    token = csrf_token_from(me, "/account")
    assert (
        me.post(f"/account/sessions/{rows[1].id}/revoke", data={"csrf_token": token}).status_code
        == 302
    )
    assert phone.get("/").status_code == 302 and laptop.get("/").status_code == 200
    me.post("/account/sessions/revoke-others", data={"csrf_token": token})
    assert laptop.get("/").status_code == 302 and me.get("/").status_code == 200


def test_cannot_revoke_someone_elses_session(app, viewer):
    make_user(app, "bob")
    alice, bob = app.test_client(), app.test_client()
    Auth(alice).login()
    Auth(bob).login(username="bob")
    with app.app_context():
        bobs = db.session.execute(
            db.select(UserSession).join(User).where(User.username == "bob")
        ).scalar_one()
    token = csrf_token_from(alice, "/account")
    response = alice.post(f"/account/sessions/{bobs.id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    assert bob.get("/").status_code == 200


def test_session_cookie_flags_in_development(app, client, auth, viewer):
    response = auth.login()
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header


def test_session_cookie_is_secure_host_prefixed_in_production(sqlite_url):
    from config import ProductionConfig

    app = build_app(
        sqlite_url,
        SESSION_COOKIE_NAME=ProductionConfig.SESSION_COOKIE_NAME,
        SESSION_COOKIE_SECURE=True,
    )
    with app.app_context():
        db.create_all()
    make_user(app, "alice", role=Role.VIEWER)
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    response = Auth(client).login()
    header = response.headers["Set-Cookie"]
    assert header.startswith("__Host-tm_session=")
    assert "Secure" in header and "HttpOnly" in header and "Path=/" in header
    assert "Domain" not in header


def test_page_views_within_the_touch_interval_write_nothing(app, client, auth, viewer):
    auth.login()
    _age_session(app, last_seen_at=utcnow() - timedelta(seconds=10))
    writes = writes_during(app, lambda: [client.get("/") for _ in range(3)])
    assert writes == []
    _age_session(app, last_seen_at=utcnow() - timedelta(seconds=61))
    writes = writes_during(app, lambda: client.get("/"))
    assert len(writes) == 1 and "user_session" in writes[0]


def test_a_session_revoked_elsewhere_is_anonymous_on_its_next_request(app, client, auth, viewer):
    auth.login()
    assert client.get("/").status_code == 200
    _age_session(app, revoked_at=utcnow(), revoked_reason="signed_out_by_user")
    assert client.get("/").status_code == 302


def test_password_change_takes_long_passwords_whole_and_refuses_over_128(
    app, client, auth, viewer
):
    auth.login()
    too_long = "w" * 129
    refused = change_password(client, PASSWORD, too_long)
    assert refused.status_code == 400
    auth.logout()
    assert auth.login(password=too_long[:128]).status_code == 200
    assert auth.login().status_code == 302

    long_password = "k" * 99 + "A"
    assert change_password(client, PASSWORD, long_password).status_code == 302
    auth.logout()
    assert auth.login(password="k" * 99 + "B").status_code == 200
    assert auth.login(password="k" * 99).status_code == 200
    assert auth.login(password=long_password).status_code == 302


def test_password_change_without_the_current_password_changes_nothing(app, client, auth, viewer):
    auth.login()
    assert change_password(client, "", "a brand new passphrase").status_code == 400
    auth.logout()
    assert auth.login(password="a brand new passphrase").status_code == 200
    assert auth.login().status_code == 302


def test_production_cookie_is_lax_httponly_secure_and_host_prefixed(sqlite_url):
    from config import ProductionConfig

    app = build_app(
        sqlite_url,
        **{k: getattr(ProductionConfig, k) for k in dir(ProductionConfig) if "COOKIE" in k},
    )
    with app.app_context():
        db.create_all()
    make_user(app, "alice", role=Role.VIEWER)
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    header = Auth(client).login().headers["Set-Cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert header.startswith("__Host-")
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "SameSite=Lax" in header and "domain" not in attributes
