"""The second factor: enrolment, sign-in with a code or a recovery code, and its limits."""

import hashlib
import re
import threading
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.auth import totp
from app.auth.access import PUBLIC
from app.auth.models import AuthPolicy, LoginCounter, RecoveryCode, Role, User, UserSession
from app.extensions import db
from tests.auth.test_access import concrete_url
from tests.conftest import PASSWORD, Auth, csrf_token_from, make_user

# A moment at the start of a 30-second step, so "the next step" is exactly +30 s.
START = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """The second factor's clock, frozen at START until a test moves it."""
    now = {"at": START}
    monkeypatch.setattr("app.auth.totp.utcnow", lambda: now["at"])

    class Clock:
        @property
        def now(self):
            return now["at"]

        def advance(self, seconds):
            now["at"] += timedelta(seconds=seconds)

    return Clock()


def code(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(moment)


def enrolled(app, username="alice", role=Role.VIEWER) -> tuple[str, list[str]]:
    """A user with a confirmed second factor; return its secret and recovery codes."""
    make_user(app, username, role=role)
    with app.app_context():
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
        secret = totp.start_enrolment(user)
        user.totp_enabled_at = START
        codes = totp.replace_recovery_codes(user)
        db.session.commit()
    return secret, codes


def send_code(client, value):
    token = csrf_token_from(client, "/login/code")
    return client.post("/login/code", data={"csrf_token": token, "code": value})


def sign_in(app, secret_code, username="alice"):
    """A new client through password and code; return it and the code page's answer."""
    client = app.test_client()
    first = Auth(client).login(username=username)
    assert first.status_code == 302 and first.location == "/login/code"
    return client, send_code(client, secret_code)


def live_sessions(app, username="alice") -> list[UserSession]:
    with app.app_context():
        rows = list(
            db.session.execute(
                db.select(UserSession)
                .join(User)
                .where(User.username == username, UserSession.revoked_at.is_(None))
            ).scalars()
        )
        db.session.expunge_all()
        return rows


def audit(app, action) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.execute(
                db.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            ).scalars()
        )
        db.session.expunge_all()
        return rows


def stored_user(app, username="alice") -> User:
    with app.app_context():
        user = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
        db.session.expunge(user)
        return user


# Enrolment on the account page.


def test_enrolment_shows_a_qr_code_and_secret_and_needs_a_first_code(app, logged_in, clock):
    token = csrf_token_from(logged_in, "/account")
    wrong = logged_in.post(
        "/account/second-factor/start",
        data={"csrf_token": token, "tf-current_password": "not my password"},
    )
    assert wrong.status_code == 400
    assert "Current password is wrong." in wrong.get_data(as_text=True)
    assert stored_user(app).totp_secret is None

    started = logged_in.post(
        "/account/second-factor/start",
        data={"csrf_token": token, "tf-current_password": PASSWORD},
    )
    assert started.location == "/account#second-factor"
    html = logged_in.get("/account").get_data(as_text=True)
    secret = re.search(r'data-testid="second-factor-secret">([A-Z2-7]+)<', html).group(1)
    qr = re.search(r'<img src="data:image/svg\+xml[^"]+"[^>]*data-testid="second-factor-qr"', html)
    assert qr, "no QR code image"
    assert stored_user(app).totp_secret == secret
    assert stored_user(app).totp_enabled_at is None  # not in force before a first code

    refused = logged_in.post(
        "/account/second-factor/confirm",
        data={"csrf_token": token, "tfc-code": code(secret, clock.now - timedelta(minutes=5))},
    )
    assert refused.status_code == 400
    assert stored_user(app).totp_enabled_at is None

    confirmed = logged_in.post(
        "/account/second-factor/confirm",
        data={"csrf_token": token, "tfc-code": code(secret, clock.now)},
    )
    assert confirmed.status_code == 200
    shown = re.search(r'data-testid="recovery-codes">([^<]+)<', confirmed.get_data(as_text=True))
    codes = shown.group(1).split()
    assert len(codes) == 10 and len(set(codes)) == 10
    user = stored_user(app)
    assert user.totp_enabled_at == START
    # The first code is spent: it cannot sign anyone in afterwards.
    assert user.totp_last_step == pyotp.TOTP(secret).timecode(START)
    with app.app_context():
        hashes = set(db.session.execute(db.select(RecoveryCode.code_hash)).scalars())
    assert hashes == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    # Shown once: the next page has neither the codes nor the secret.
    again = logged_in.get("/account").get_data(as_text=True)
    assert codes[0] not in again and secret not in again
    assert "10 unused recovery codes" in again
    assert len(audit(app, Action.SECOND_FACTOR_ENROL)) == 1


def test_enrolling_signs_out_the_other_sessions_but_keeps_this_one(app, logged_in, clock):
    other = app.test_client()
    assert Auth(other).login().status_code == 302
    assert other.get("/account").status_code == 200
    token = csrf_token_from(logged_in, "/account")
    logged_in.post(
        "/account/second-factor/start",
        data={"csrf_token": token, "tf-current_password": PASSWORD},
    )
    secret = stored_user(app).totp_secret
    logged_in.post(
        "/account/second-factor/confirm",
        data={"csrf_token": token, "tfc-code": code(secret, clock.now)},
    )
    assert other.get("/account").location.startswith("/login")
    assert logged_in.get("/account").status_code == 200
    assert len(live_sessions(app)) == 1
    event = audit(app, Action.SECOND_FACTOR_ENROL)[0]
    assert event.detail == {"other_sessions_ended": 1}


# Sign-in with the second factor.


def test_sign_in_asks_for_the_code_after_the_password(app, clock):
    secret, _ = enrolled(app)
    client, response = sign_in(app, code(secret, clock.now))
    assert response.status_code == 302 and response.location == "/"
    assert client.get("/").status_code == 200
    [row] = live_sessions(app)
    assert row.method == "password+totp"
    [event] = audit(app, Action.LOGIN_SUCCESS)
    assert event.detail == {"method": "password+totp"}
    assert event.actor_name == "alice"


def test_the_code_page_keeps_where_the_user_was_going(app, clock):
    secret, _ = enrolled(app)
    client = app.test_client()
    token = csrf_token_from(client, "/login")
    first = client.post(
        "/login?next=/alerts",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert first.location == "/login/code"
    assert send_code(client, code(secret, clock.now)).location == "/alerts"


def test_a_wrong_password_never_reaches_the_code_page(app, clock):
    enrolled(app)
    client = app.test_client()
    response = Auth(client).login(password="wrong password here")
    assert response.status_code == 200
    assert client.get("/login/code").location.startswith("/login?next=")


def test_half_logged_in_grants_nothing(app, clock):
    enrolled(app)
    client = app.test_client()
    assert Auth(client).login().location == "/login/code"
    checked = 0
    for rule in app.url_map.iter_rules():
        # Every protected page; the public ones (login, health) are open to anyone anyway.
        access = getattr(app.view_functions[rule.endpoint], "access", None)
        if access == PUBLIC or rule.endpoint == "static" or "GET" not in rule.methods:
            continue
        url = concrete_url(rule)
        html = client.get(url, headers={"Accept": "text/html"})
        as_json = client.get(url, headers={"Accept": "application/json"})
        assert html.status_code in (302, 401), url
        if html.status_code == 302:
            assert html.location.startswith("/login?next="), url
        assert as_json.status_code == 401, url
        checked += 1
    assert checked > 10
    # Still waiting for the code, and no session of any kind exists.
    assert client.get("/login/code").status_code == 200
    assert live_sessions(app) == []


def test_half_logged_in_cannot_post_account_changes(app, clock):
    enrolled(app)
    client = app.test_client()
    Auth(client).login()
    token = csrf_token_from(client, "/login/code")
    response = client.post(
        "/account/second-factor/remove",
        data={"csrf_token": token, "tfr-current_password": PASSWORD},
    )
    assert response.location.startswith("/login")
    assert stored_user(app).totp_enabled_at is not None


def test_replayed_code_is_refused(app, clock):
    secret, _ = enrolled(app)
    now_code = code(secret, clock.now)
    assert sign_in(app, now_code)[1].location == "/"
    # The same code again, within its validity: refused.
    client, replay = sign_in(app, now_code)
    assert replay.status_code == 200
    assert "That code is not valid." in replay.get_data(as_text=True)
    assert client.get("/").location.startswith("/login")
    # A code of the step before the accepted one is refused as well.
    assert sign_in(app, code(secret, clock.now - timedelta(seconds=30)))[1].status_code == 200
    [failure, _] = audit(app, Action.LOGIN_CODE_FAILURE)
    assert failure.detail == {"reason": "wrong_code"}
    assert failure.actor_name == "anonymous"
    # The next step's code works.
    clock.advance(30)
    assert sign_in(app, code(secret, clock.now))[1].location == "/"


def test_codes_one_step_either_side_are_accepted(app, clock):
    secret, _ = enrolled(app)
    assert sign_in(app, code(secret, clock.now - timedelta(seconds=30)))[1].location == "/"
    assert sign_in(app, code(secret, clock.now + timedelta(seconds=30)))[1].location == "/"
    assert sign_in(app, code(secret, clock.now + timedelta(seconds=60)))[1].status_code == 200


def test_recovery_code_works_once(app, clock):
    _, codes = enrolled(app)
    client, response = sign_in(app, codes[3].upper().replace("-", " "))
    assert response.location == "/"
    [row] = live_sessions(app)
    assert row.method == "recovery-code"
    assert "9 left" in client.get("/").get_data(as_text=True)
    [event] = audit(app, Action.LOGIN_SUCCESS)
    assert event.detail == {"method": "recovery-code", "recovery_codes_left": 9}
    assert sign_in(app, codes[3])[1].status_code == 200
    assert len(live_sessions(app)) == 1
    assert sign_in(app, codes[4])[1].location == "/"


def test_wrong_codes_are_throttled_like_passwords(app, clock):
    secret, _ = enrolled(app)
    limit = app.config["LOGIN_MAX_FAILURES_PER_USER"]
    client = app.test_client()
    Auth(client).login()
    for _ in range(limit):
        assert send_code(client, "000000").status_code == 200
    locked = send_code(client, code(secret, clock.now))
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "temporarily locked" in locked.get_data(as_text=True)
    assert client.get("/").location.startswith("/login")
    [event] = audit(app, Action.LOGIN_LOCKED)
    assert event.detail == {"reason": "code_throttled"}
    # A new password sign-in does not reset the code counter.
    again = app.test_client()
    Auth(again).login()
    assert send_code(again, code(secret, clock.now)).status_code == 429
    with app.app_context():
        counter = db.session.get(LoginCounter, "code:alice")
        assert counter.attempts == limit + 2


def test_a_right_code_resets_the_code_counter(app, clock):
    secret, _ = enrolled(app)
    client = app.test_client()
    Auth(client).login()
    send_code(client, "000000")
    assert send_code(client, code(secret, clock.now)).location == "/"
    with app.app_context():
        assert db.session.get(LoginCounter, "code:alice") is None


def test_the_code_must_come_within_a_few_minutes(app, clock):
    secret, _ = enrolled(app)
    client = app.test_client()
    Auth(client).login()
    clock.advance(app.config["SECOND_FACTOR_PENDING_SECONDS"] + 1)
    response = send_code_without_page(client, code(secret, clock.now))
    assert response.location.startswith("/login")
    assert live_sessions(app) == []


def send_code_without_page(client, value):
    """POST a code with the CSRF token of the login page (the code page is gone)."""
    token = csrf_token_from(client, "/login")
    return client.post("/login/code", data={"csrf_token": token, "code": value})


def test_a_user_disabled_while_waiting_gets_no_session(app, clock):
    secret, _ = enrolled(app)
    client = app.test_client()
    Auth(client).login()
    with app.app_context():
        db.session.execute(db.update(User).values(active=False))
        db.session.commit()
    assert send_code_without_page(client, code(secret, clock.now)).location.startswith("/login")
    assert live_sessions(app) == []


# Removing the factor and new recovery codes.


def test_removing_the_factor_needs_the_password_and_signs_out_other_sessions(app, clock):
    secret, _ = enrolled(app)
    client, _ = sign_in(app, code(secret, clock.now))
    clock.advance(30)
    other, _ = sign_in(app, code(secret, clock.now))
    token = csrf_token_from(client, "/account")
    wrong = client.post(
        "/account/second-factor/remove",
        data={"csrf_token": token, "tfr-current_password": "wrong password"},
    )
    assert wrong.status_code == 400
    assert stored_user(app).totp_enabled_at is not None
    client.post(
        "/account/second-factor/remove",
        data={"csrf_token": token, "tfr-current_password": PASSWORD},
    )
    user = stored_user(app)
    assert (user.totp_secret, user.totp_enabled_at, user.totp_last_step) == (None, None, None)
    with app.app_context():
        assert db.session.execute(db.select(RecoveryCode)).first() is None
    assert client.get("/").status_code == 200
    assert other.get("/").location.startswith("/login")
    [event] = audit(app, Action.SECOND_FACTOR_REMOVE)
    assert event.detail == {"other_sessions_ended": 1}
    # The password alone signs in again.
    assert Auth(app.test_client()).login().location == "/"


def test_new_recovery_codes_replace_the_old_ones(app, clock):
    secret, old_codes = enrolled(app)
    client, _ = sign_in(app, code(secret, clock.now))
    token = csrf_token_from(client, "/account")
    response = client.post(
        "/account/second-factor/recovery-codes",
        data={"csrf_token": token, "tfn-current_password": PASSWORD},
    )
    new_codes = re.search(
        r'data-testid="recovery-codes">([^<]+)<', response.get_data(as_text=True)
    ).group(1)
    assert sign_in(app, old_codes[0])[1].status_code == 200
    assert sign_in(app, new_codes.split()[0])[1].location == "/"
    assert len(audit(app, Action.RECOVERY_CODES_REPLACE)) == 1


# The requirement per role.


def require_factor_for(app, *roles):
    with app.app_context():
        db.session.add(AuthPolicy(id=1, local_passwords=True, second_factor_roles=list(roles)))
        db.session.commit()


def test_a_role_that_needs_a_factor_enrols_before_anything_else(app, clock):
    make_user(app, "olga", role=Role.OPERATOR)
    make_user(app, "victor", role=Role.VIEWER)
    require_factor_for(app, Role.OPERATOR)
    assert Auth(app.test_client()).login(username="victor").location == "/"

    client = app.test_client()
    response = Auth(client).login(username="olga")
    assert response.location == "/account#second-factor"
    for path in ("/", "/alerts/"):
        assert client.get(path).location == "/account#second-factor", path
    api_like = client.get("/alerts/", headers={"Accept": "application/json"})
    assert api_like.status_code == 403
    assert api_like.get_json()["error"] == "second_factor_required"
    page = client.get("/account").get_data(as_text=True)
    assert "Your role must use a second factor." in page
    token = csrf_token_from(client, "/account")
    # Other forms of the account page stay closed too.
    token_post = client.post(
        "/account/tokens", data={"csrf_token": token, "tok-name": "x", "tok-scopes": "read"}
    )
    assert token_post.location == "/account#second-factor"

    client.post(
        "/account/second-factor/start",
        data={"csrf_token": token, "tf-current_password": PASSWORD},
    )
    secret = stored_user(app, "olga").totp_secret
    client.post(
        "/account/second-factor/confirm",
        data={"csrf_token": token, "tfc-code": code(secret, clock.now)},
    )
    assert client.get("/").status_code == 200
    # From now on the code is asked after the password.
    clock.advance(30)
    assert sign_in(app, code(secret, clock.now), username="olga")[1].location == "/"


def test_a_role_lifted_from_the_policy_frees_a_waiting_session(app, clock):
    make_user(app, "olga", role=Role.OPERATOR)
    require_factor_for(app, Role.OPERATOR)
    client = app.test_client()
    Auth(client).login(username="olga")
    assert client.get("/").location == "/account#second-factor"
    with app.app_context():
        db.session.get(AuthPolicy, 1).second_factor_roles = []
        db.session.commit()
    assert client.get("/").status_code == 200


def test_removing_a_required_factor_closes_the_other_pages_again(app, clock):
    secret, _ = enrolled(app, "olga", Role.OPERATOR)
    require_factor_for(app, Role.OPERATOR)
    client, _ = sign_in(app, code(secret, clock.now), username="olga")
    token = csrf_token_from(client, "/account")
    client.post(
        "/account/second-factor/remove",
        data={"csrf_token": token, "tfr-current_password": PASSWORD},
    )
    assert client.get("/").location == "/account#second-factor"


# Reset by an admin and from the shell.


def test_admin_resets_a_users_factor_and_ends_their_sessions(app, clock):
    secret, _ = enrolled(app)
    victim, _ = sign_in(app, code(secret, clock.now))
    make_user(app, "root", role=Role.ADMIN)
    admin = app.test_client()
    Auth(admin).login(username="root")
    alice = stored_user(app)
    page = admin.get(f"/admin/users/{alice.id}").get_data(as_text=True)
    assert "On since" in page
    assert admin.get("/admin/users").get_data(as_text=True).count("has-second-factor") == 1
    token = csrf_token_from(admin, f"/admin/users/{alice.id}")
    response = admin.post(
        f"/admin/users/{alice.id}/reset-second-factor", data={"csrf_token": token}
    )
    assert response.status_code == 302
    assert stored_user(app).totp_secret is None
    assert victim.get("/").location.startswith("/login")
    [event] = audit(app, Action.SECOND_FACTOR_RESET)
    assert (event.actor_name, event.target) == ("root", "user:alice")
    assert event.detail == {"sessions_ended": 1}
    assert Auth(app.test_client()).login().location == "/"
    # Nothing left to reset.
    again = admin.post(f"/admin/users/{alice.id}/reset-second-factor", data={"csrf_token": token})
    assert again.status_code == 400


def test_only_admins_reset_a_factor(app, clock):
    enrolled(app)
    make_user(app, "olga", role=Role.OPERATOR)
    client = app.test_client()
    Auth(client).login(username="olga")
    token = csrf_token_from(client, "/account")
    alice = stored_user(app)
    response = client.post(
        f"/admin/users/{alice.id}/reset-second-factor", data={"csrf_token": token}
    )
    assert response.status_code == 403
    assert stored_user(app).totp_enabled_at is not None


def test_cli_resets_a_locked_out_admins_factor(app, runner, clock):
    secret, _ = enrolled(app, "root", Role.ADMIN)
    session_client, _ = sign_in(app, code(secret, clock.now), username="root")
    result = runner.invoke(args=["users", "reset-2fa", "ROOT"])
    assert result.exit_code == 0, result.output
    assert "1 session(s) signed out" in result.output
    assert stored_user(app, "root").totp_secret is None
    assert session_client.get("/").location.startswith("/login")
    [event] = audit(app, Action.SECOND_FACTOR_RESET)
    assert (event.actor_name, event.target) == ("cli", "user:root")
    assert Auth(app.test_client()).login(username="root").location == "/"
    again = runner.invoke(args=["users", "reset-2fa", "root"])
    assert again.exit_code != 0 and "has no second factor" in again.output
    unknown = runner.invoke(args=["users", "reset-2fa", "nobody"])
    assert unknown.exit_code != 0 and "No user named" in unknown.output


def test_a_session_from_before_the_policy_change_keeps_going_until_the_next_sign_in(app, clock):
    make_user(app, "olga", role=Role.OPERATOR)
    client = app.test_client()
    assert Auth(client).login(username="olga").location == "/"
    require_factor_for(app, Role.OPERATOR)
    # As documented: the requirement applies from the next sign-in on.
    assert client.get("/").status_code == 200
    assert Auth(app.test_client()).login(username="olga").location == "/account#second-factor"


def test_a_provider_user_is_not_offered_a_local_second_factor(app, logged_in):
    with app.app_context():
        db.session.execute(
            db.update(User).values(oidc_issuer="https://id.example.com", oidc_subject="s-1")
        )
        db.session.commit()
    html = logged_in.get("/account").get_data(as_text=True)
    assert "company's identity provider" in html
    assert "Set up a second factor" not in html


def test_the_same_code_sent_at_once_signs_in_only_one_browser(any_app, clock):
    secret, _ = enrolled(any_app)
    clients = []
    for _ in range(4):
        client = any_app.test_client()
        assert Auth(client).login().location == "/login/code"
        clients.append((client, csrf_token_from(client, "/login/code")))
    value = code(secret, clock.now)
    barrier = threading.Barrier(len(clients))
    answers = []

    def send(client, token):
        barrier.wait()
        answers.append(client.post("/login/code", data={"csrf_token": token, "code": value}))

    threads = [threading.Thread(target=send, args=pair) for pair in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 302]
    assert len(live_sessions(any_app)) == 1


def test_local_passwords_switched_off_while_waiting_for_the_code_end_the_wait(app, clock):
    secret, _ = enrolled(app)
    client = app.test_client()
    assert Auth(client).login().location == "/login/code"
    with app.app_context():
        db.session.add(AuthPolicy(id=1, local_passwords=False, second_factor_roles=[]))
        db.session.commit()
    assert send_code_without_page(client, code(secret, clock.now)).location.startswith("/login")
    assert live_sessions(app) == []
