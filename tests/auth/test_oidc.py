"""Company sign-in (OpenID Connect) through the test client against a real provider process."""

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from app.admin.audit import Action
from app.auth.models import Role, User, UserSession
from app.extensions import db
from tests.admin.helpers import events
from tests.auth.oidc_provider import (
    ADMIN_GROUP,
    CLIENT_ID,
    OPERATOR_GROUP,
    VIEWER_GROUP,
    callback_path,
    running_provider,
)
from tests.conftest import Auth, build_app, make_user

REFUSED = "Sign-in with the provider was not completed"


def oidc_app(sqlite_url, provider, **overrides):
    app = build_app(sqlite_url, **provider.settings(**overrides))
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def app(sqlite_url, oidc_provider):
    """An app on a fresh SQLite file, signing in with the provider process."""
    app = oidc_app(sqlite_url, oidc_provider)
    yield app
    with app.app_context():
        db.engine.dispose()


_subjects = iter(range(1, 1_000_000))


def new_subject(provider, **claims) -> str:
    """A user the provider knows (a fresh subject per call: the provider outlives tests)."""
    sub = f"sub-{next(_subjects)}-{claims.get('preferred_username', 'x')}"
    provider.set_user(sub, **claims)
    return sub


def start(client, next_url=None) -> str:
    """Click the login page's button: the provider's authorization URL we are sent to."""
    response = client.get("/login/oidc", query_string={"next": next_url} if next_url else None)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.location


def sign_in(client, provider, sub, next_url=None):
    """The whole flow: our redirect, the provider's form, the callback."""
    callback = provider.authorize(start(client, next_url), sub)
    return client.get(callback_path(callback))


def user_named(app, username) -> User | None:
    with app.app_context():
        return db.session.execute(
            db.select(User).where(User.username == username)
        ).scalar_one_or_none()


def refusal_reasons(app) -> list[str]:
    return [event.detail["reason"] for event in events(app, Action.LOGIN_REFUSED)]


def assert_refused(client, response, message=REFUSED):
    assert response.status_code == 302
    assert response.location == "/login"
    assert message in client.get("/login").get_data(as_text=True)
    assert client.get("/").status_code == 302  # still anonymous


def test_first_sign_in_creates_the_user_with_the_role_of_their_group(app, client, oidc_provider):
    sub = new_subject(
        oidc_provider,
        preferred_username="Olivia.Ops",
        email="olivia@example.com",
        groups=["everyone", OPERATOR_GROUP],
    )
    response = sign_in(client, oidc_provider, sub)
    assert response.status_code == 302
    assert response.location == "/"
    assert client.get("/").status_code == 200

    user = user_named(app, "olivia.ops")
    assert user.role == Role.OPERATOR
    assert (user.oidc_issuer, user.oidc_subject) == (oidc_provider.url, sub)
    with app.app_context():
        row = db.session.execute(db.select(UserSession)).scalar_one()
        assert row.method == "oidc"
    created = events(app, Action.USER_CREATE)[0]
    assert created.detail["source"] == "oidc"
    assert created.detail["role"] == Role.OPERATOR
    signed_in = events(app, Action.LOGIN_OIDC)[0]
    assert signed_in.target == "user:olivia.ops"
    assert signed_in.actor_name == "olivia.ops"


def test_next_sign_in_finds_the_same_user_by_subject(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="sam", groups=[VIEWER_GROUP])
    sign_in(client, oidc_provider, sub)
    client.post("/logout", data={"csrf_token": _csrf(client)})
    # A new preferred_username at the provider does not make a second account.
    oidc_provider.set_user(sub, preferred_username="samuel", groups=[VIEWER_GROUP])
    assert sign_in(client, oidc_provider, sub).location == "/"
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar() == 1
    assert len(events(app, Action.LOGIN_OIDC)) == 2


def _csrf(client) -> str:
    from tests.conftest import csrf_token_from

    return csrf_token_from(client, "/account")


def test_authorization_request_carries_pkce_state_and_nonce(client):
    query = parse_qs(urlsplit(start(client)).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 20
    assert len(query["nonce"][0]) >= 20
    assert query["scope"] == ["openid profile email"]
    assert query["redirect_uri"] == ["http://localhost/login/oidc/callback"]


def test_a_wrong_state_is_refused(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="wanda", groups=[ADMIN_GROUP])
    callback = oidc_provider.authorize(start(client), sub)
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    query["state"] = ["a-state-this-browser-never-asked-for"]
    forged = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    assert_refused(client, client.get(callback_path(forged)))
    assert user_named(app, "wanda") is None
    assert refusal_reasons(app) == ["state_mismatch"]


def test_a_callback_from_another_browser_is_refused(app, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="mallory", groups=[ADMIN_GROUP])
    victim, attacker = app.test_client(), app.test_client()
    callback = oidc_provider.authorize(start(victim), sub)
    assert_refused(attacker, attacker.get(callback_path(callback)))
    assert user_named(app, "mallory") is None


def test_a_replayed_code_is_refused(app, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="rita", groups=[VIEWER_GROUP])
    first = app.test_client()
    callback = oidc_provider.authorize(start(first), sub)
    assert first.get(callback_path(callback)).location == "/"
    code = parse_qs(urlsplit(callback).query)["code"][0]

    # The same callback again: its state was used up by the first.
    again = first.get(callback_path(callback))
    assert again.location == "/login"
    # The code with a state of the replaying browser's own: the provider refuses the code.
    replayer = app.test_client()
    state = parse_qs(urlsplit(start(replayer)).query)["state"][0]
    replayed = replayer.get("/login/oidc/callback", query_string={"code": code, "state": state})
    assert_refused(replayer, replayed)
    assert refusal_reasons(app) == ["state_mismatch", "provider_refused"]
    assert len(events(app, Action.LOGIN_OIDC)) == 1


def test_an_id_token_for_another_nonce_is_refused(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="nina", groups=[ADMIN_GROUP])
    parts = urlsplit(start(client))
    query = parse_qs(parts.query)
    query["nonce"] = ["a-nonce-from-another-sign-in"]
    swapped = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    callback = oidc_provider.authorize(swapped, sub)
    assert_refused(client, client.get(callback_path(callback)))
    assert user_named(app, "nina") is None
    refused = events(app, Action.LOGIN_REFUSED)[0]
    assert refused.detail["reason"] == "id_token_invalid"
    assert "nonce" in refused.detail["error"]


def test_an_expired_id_token_is_refused(sqlite_url, tmp_path):
    # Tokens that expired five minutes before they were issued: past the two minutes
    # of clock skew we allow.
    with running_provider(tmp_path, "--token-max-age=-300") as stale:
        app = oidc_app(sqlite_url, stale)
        client = app.test_client()
        stale.set_user("sub-late", preferred_username="late", groups=[ADMIN_GROUP])
        assert_refused(client, sign_in(client, stale, "sub-late"))
    assert user_named(app, "late") is None
    refused = events(app, Action.LOGIN_REFUSED)[0]
    assert refused.detail["reason"] == "id_token_invalid"
    assert "expired" in refused.detail["error"]


def test_a_missing_groups_claim_is_refused_without_a_default_role(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="gus")
    response = sign_in(client, oidc_provider, sub)
    assert_refused(client, response, "did not say which groups you are in")
    assert user_named(app, "gus") is None
    assert refusal_reasons(app) == ["no_groups_claim"]


def test_groups_that_give_no_role_are_refused(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="hal", groups=["canteen"])
    assert_refused(client, sign_in(client, oidc_provider, sub), "None of your groups")
    assert refusal_reasons(app) == ["no_mapped_group"]


def test_a_missing_groups_claim_gets_the_default_role(sqlite_url, oidc_provider):
    app = oidc_app(sqlite_url, oidc_provider, OIDC_DEFAULT_ROLE="viewer")
    sub = new_subject(oidc_provider, email="Dee@Example.com")
    client = app.test_client()
    assert sign_in(client, oidc_provider, sub).location == "/"
    assert user_named(app, "dee@example.com").role == Role.VIEWER


def test_a_disabled_user_is_refused_although_the_provider_says_yes(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="dora", groups=[ADMIN_GROUP])
    sign_in(client, oidc_provider, sub)
    result = app.test_cli_runner().invoke(args=["users", "disable", "dora"])
    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 302  # the live session ended with the disable

    response = sign_in(client, oidc_provider, sub)
    assert_refused(client, response, "Your account here is disabled")
    refused = events(app, Action.LOGIN_REFUSED)[0]
    assert refused.detail["reason"] == "disabled"
    assert refused.target == "user:dora"


def test_a_role_lowered_at_the_provider_ends_the_sessions_that_had_more(app, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="ada", groups=[ADMIN_GROUP])
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, oidc_provider, sub)
    assert laptop.get("/admin/users").status_code == 200

    oidc_provider.set_user(sub, preferred_username="ada", groups=[VIEWER_GROUP])
    assert sign_in(phone, oidc_provider, sub).location == "/"
    assert user_named(app, "ada").role == Role.VIEWER
    assert phone.get("/admin/users").status_code == 403
    assert phone.get("/").status_code == 200
    # The laptop's session was an admin's: it is over, not merely narrowed.
    assert laptop.get("/").status_code == 302
    with app.app_context():
        reasons = db.session.execute(db.select(UserSession.revoked_reason)).scalars().all()
    assert sorted(map(str, reasons)) == ["None", "role_lowered"]
    change = events(app, Action.USER_ROLE)[0]
    assert change.detail["from"] == Role.ADMIN
    assert change.detail["to"] == Role.VIEWER
    assert change.detail["sessions_ended"] == 1
    assert change.actor_name == "oidc"


def test_a_role_raised_at_the_provider_keeps_the_sessions(app, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="rob", groups=[VIEWER_GROUP])
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, oidc_provider, sub)
    oidc_provider.set_user(sub, preferred_username="rob", groups=[OPERATOR_GROUP, VIEWER_GROUP])
    sign_in(phone, oidc_provider, sub)
    assert user_named(app, "rob").role == Role.OPERATOR
    assert laptop.get("/").status_code == 200
    assert events(app, Action.USER_ROLE)[0].detail["sessions_ended"] == 0


def test_removed_from_every_group_ends_the_sessions_and_is_refused(app, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="leo", groups=[OPERATOR_GROUP])
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, oidc_provider, sub)
    oidc_provider.set_user(sub, preferred_username="leo", groups=["alumni"])
    assert_refused(phone, sign_in(phone, oidc_provider, sub), "None of your groups")
    assert laptop.get("/").status_code == 302


def test_a_local_user_of_the_same_name_is_not_taken_over(app, client, oidc_provider):
    make_user(app, "alice", role=Role.ADMIN)
    sub = new_subject(oidc_provider, preferred_username="alice", groups=[VIEWER_GROUP])
    assert sign_in(client, oidc_provider, sub).location == "/"
    local, provided = user_named(app, "alice"), user_named(app, "alice-2")
    assert local.oidc_subject is None and local.role == Role.ADMIN
    assert provided.oidc_subject == sub and provided.role == Role.VIEWER
    # The local admin still signs in with their password.
    assert Auth(app.test_client()).login(username="alice").location == "/"


def test_a_provider_user_cannot_sign_in_with_a_password(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="pat", groups=[VIEWER_GROUP])
    sign_in(client, oidc_provider, sub)
    response = Auth(app.test_client()).login(username="pat", password="anything at all 123")
    assert response.status_code == 200
    assert "Invalid username or password" in response.get_data(as_text=True)


def test_next_is_followed_only_on_our_site(app, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="nick", groups=[VIEWER_GROUP])
    assert sign_in(app.test_client(), oidc_provider, sub, "/alerts").location == "/alerts"
    evil = sign_in(app.test_client(), oidc_provider, sub, "//evil.example.com/")
    assert evil.location == "/"


def test_the_provider_saying_no_is_a_refusal(app, client, oidc_provider):
    parts = urlsplit(start(client))
    state = parse_qs(parts.query)["state"][0]
    response = client.get(
        "/login/oidc/callback", query_string={"error": "access_denied", "state": state}
    )
    assert_refused(client, response)
    assert events(app, Action.LOGIN_REFUSED)[0].detail["error"] == "access_denied"


def test_the_login_page_shows_the_provider_button(client):
    page = client.get("/login?next=/alerts").get_data(as_text=True)
    assert "Sign in with Mock Identity" in page
    assert 'href="/login/oidc?next=/alerts"' in page


def test_without_an_issuer_there_is_no_button_and_no_route(sqlite_url):
    app = build_app(sqlite_url)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    assert "Sign in with" not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_an_unreachable_provider_is_a_clear_refusal(sqlite_url):
    from tests.auth.oidc_provider import MockProvider, _free_port

    gone = MockProvider(f"http://127.0.0.1:{_free_port()}")
    app = oidc_app(sqlite_url, gone)
    client = app.test_client()
    response = client.get("/login/oidc")
    assert_refused(client, response, "The sign-in provider cannot be reached")
    with app.app_context():
        assert refusal_reasons(app) == ["provider_unreachable"]


def test_with_local_passwords_off_the_provider_comes_first_and_still_signs_in(
    app, client, oidc_provider
):
    from tests.auth.test_break_glass import switch_local_passwords

    switch_local_passwords(app, False)
    page = client.get("/login").get_data(as_text=True)
    assert 'class="oidc-sign-in"' in page
    assert page.index("Sign in with Mock Identity") < page.index("Break-glass admin sign-in")
    sub = new_subject(oidc_provider, preferred_username="ivy", groups=[VIEWER_GROUP])
    assert sign_in(client, oidc_provider, sub).location == "/"


def test_oidc_check_prints_what_discovery_offers(app, oidc_provider):
    result = app.test_cli_runner().invoke(args=["auth", "oidc-check"])
    assert result.exit_code == 0, result.output
    assert f"Issuer:                 {oidc_provider.url}\n" in result.output
    assert f"token_endpoint:         {oidc_provider.url}/oauth2/token" in result.output
    assert "Scopes supported:       openid, profile, email" in result.output
    assert "PKCE methods:           (not advertised)" in result.output
    assert "Groups claim:           groups (advertised: unknown" in result.output
    assert "admin from groups:    desk-admins" in result.output
    assert "/login/oidc/callback" in result.output
    assert result.output.rstrip().endswith("usable.")


def test_oidc_check_fails_clearly_when_the_provider_cannot_be_reached(sqlite_url):
    from tests.auth.oidc_provider import MockProvider, _free_port

    gone = MockProvider(f"http://127.0.0.1:{_free_port()}")
    result = oidc_app(sqlite_url, gone).test_cli_runner().invoke(args=["auth", "oidc-check"])
    assert result.exit_code == 1
    assert f"Cannot fetch {gone.url}/.well-known/openid-configuration" in result.output


def test_oidc_check_says_when_company_sign_in_is_off(sqlite_url):
    result = build_app(sqlite_url).test_cli_runner().invoke(args=["auth", "oidc-check"])
    assert result.exit_code == 1
    assert "Company sign-in is off" in result.output


def test_only_the_latest_start_of_a_sign_in_is_kept_in_the_cookie(app, client, oidc_provider):
    first = parse_qs(urlsplit(start(client)).query)["state"][0]
    start(client)
    with client.session_transaction() as cookie:
        states = [key for key in cookie if key.startswith("_state_oidc_")]
    assert len(states) == 1 and first not in states[0]


def test_a_name_taken_meanwhile_is_a_refusal_not_a_crash(app, client, oidc_provider, monkeypatch):
    from app.auth import oidc_accounts

    make_user(app, "twin")
    sub = new_subject(oidc_provider, preferred_username="twin", groups=[VIEWER_GROUP])
    # As if another tab's first sign-in took the name between our check and our insert.
    monkeypatch.setattr(oidc_accounts, "unique_username", lambda claims: "twin")
    response = sign_in(client, oidc_provider, sub)
    assert_refused(client, response, "Another sign-in of yours was under way")
    assert refusal_reasons(app) == ["sign_in_clash"]
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar() == 1


@pytest.mark.postgres
def test_first_sign_in_and_a_lowered_role_on_postgresql(postgres_url, oidc_provider):
    from tests.conftest import _truncate_all

    app = build_app(postgres_url, **oidc_provider.settings())
    with app.app_context():
        _truncate_all()
    try:
        sub = new_subject(oidc_provider, preferred_username="pg", groups=[ADMIN_GROUP])
        laptop, phone = app.test_client(), app.test_client()
        assert sign_in(laptop, oidc_provider, sub).location == "/"
        oidc_provider.set_user(sub, preferred_username="pg", groups=[VIEWER_GROUP])
        assert sign_in(phone, oidc_provider, sub).location == "/"
        assert user_named(app, "pg").role == Role.VIEWER
        assert laptop.get("/").status_code == 302
        assert phone.get("/").status_code == 200
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_the_account_page_of_a_provider_user_has_no_password_or_factor_forms(
    app, client, oidc_provider
):
    sub = new_subject(oidc_provider, preferred_username="acc", groups=[VIEWER_GROUP])
    sign_in(client, oidc_provider, sub)
    page = client.get("/account").get_data(as_text=True)
    assert "company's identity provider" in page
    assert "Change password" not in page
    assert 'id="second-factor"' not in page
    assert "Timezone" in page


def test_users_list_marks_company_sign_in(app, client, oidc_provider):
    sub = new_subject(oidc_provider, preferred_username="lin", groups=[VIEWER_GROUP])
    sign_in(client, oidc_provider, sub)
    output = app.test_cli_runner().invoke(args=["users", "list"]).output
    assert "lin  viewer    active    (company sign-in)" in output
