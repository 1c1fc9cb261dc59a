"""Token lifecycle: scope, accounts, revocation, expiry, hashes, last use; CLI and page."""

import re
from datetime import timedelta

import pytest

from app.admin.audit import Action
from app.auth.models import ApiToken, Role, User
from app.db_types import utcnow
from app.extensions import db
from app.positions.models import Position
from tests.admin.helpers import events, only_event, post, user
from tests.api.conftest import bearer, row
from tests.conftest import ParsedPage, client_as, csrf_token_from, writes_during

URL = "/api/v1/positions"


def stored_count(app):
    with app.app_context():
        return db.session.execute(db.select(db.func.count(Position.id))).scalar_one()


def token_rows(app):
    with app.app_context():
        return db.session.execute(db.select(ApiToken).order_by(ApiToken.id)).scalars().all()


def test_only_the_hash_of_a_token_is_stored(app, tokens):
    secret = tokens.create()
    assert secret.startswith("tm_") and len(secret) >= 40
    (token,) = token_rows(app)
    assert secret not in (token.token_hash, token.prefix) and token.prefix == secret[:10]
    with app.app_context():
        dump = "\n".join(str(r) for r in db.session.execute(db.text("SELECT * FROM api_token")))
    assert secret not in dump


def test_account_restriction_refuses_other_accounts_and_stores_nothing(app, tokens, client):
    secret = tokens.create("ingest", accounts=["desk-a"])
    ok = client.post(URL, json={"positions": [row(account="desk-a")]}, headers=bearer(secret))
    assert ok.status_code == 200
    mixed = {
        "positions": [
            row(account="desk-a", timestamp="2026-03-01T13:00:00Z"),
            row(account="desk-b"),
        ]
    }
    refused = client.post(URL, json=mixed, headers=bearer(secret))
    assert refused.status_code == 403 and "desk-b" in refused.get_json()["message"]
    assert stored_count(app) == 1


def test_revocation_takes_effect_on_the_next_call(app, tokens, client, runner):
    secret = tokens.create()
    assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 200
    (token,) = token_rows(app)
    result = runner.invoke(args=["tokens", "revoke", str(token.id)])
    assert result.exit_code == 0, result.output
    response = client.post(URL, json={"positions": [row()]}, headers=bearer(secret))
    assert response.status_code == 401
    assert stored_count(app) == 0


def test_expired_token_is_refused(app, tokens, client):
    secret = tokens.create(expires_at=utcnow() + timedelta(seconds=60))
    assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 200
    with app.app_context():
        db.session.execute(db.update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 401


def test_token_of_a_disabled_user_is_refused(app, tokens, client, runner):
    secret = tokens.create()
    assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 200
    assert runner.invoke(args=["users", "disable", "bot"]).exit_code == 0
    assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 401
    response = client.post(URL, json={"positions": [row()]}, headers=bearer(secret))
    assert response.status_code == 401
    assert stored_count(app) == 0


def test_last_used_is_recorded(app, tokens, client):
    secret = tokens.create()
    assert token_rows(app)[0].last_used_at is None
    client.get("/api/v1/assets", headers=bearer(secret))
    assert utcnow() - token_rows(app)[0].last_used_at < timedelta(seconds=5)


def test_token_in_the_query_string_is_refused_and_nothing_written(app, tokens, client):
    secret = tokens.create()
    for name in ("token", "access_token", "api_key"):
        response = client.post(
            f"{URL}?{name}={secret}", json={"positions": [row()]}, headers=bearer(secret)
        )
        assert response.status_code == 401 and "header" in response.get_json()["message"]
    assert stored_count(app) == 0


def test_missing_malformed_and_unknown_tokens_are_401(client, tokens):
    tokens.create()
    for header in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        bearer("tm_not-a-real-token"),
    ):
        response = client.get("/api/v1/assets", headers=header)
        assert response.status_code == 401 and response.is_json
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_tokens_never_appear_in_logs(app, tokens, client, caplog):
    secret = tokens.create()
    with caplog.at_level("DEBUG"):
        client.get("/api/v1/assets", headers=bearer(secret))
        client.get("/api/v1/assets", headers=bearer(secret + "x"))
    assert secret not in caplog.text


def test_token_use_is_logged_by_id_and_route_without_the_secret(app, tokens, client, caplog):
    secret = tokens.create()
    with caplog.at_level("INFO", logger="app.auth.access"):
        assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 200
    used = [r.getMessage() for r in caplog.records if r.getMessage().startswith("token used")]
    assert len(used) == 1
    assert "route=api.get_assets" in used[0]
    assert secret not in caplog.text


def test_cli_create_prints_secret_once_and_list_never_shows_it(app, runner, tokens):
    result = runner.invoke(
        args=[
            "tokens",
            "create",
            "bot",
            "feeder",
            "--scope",
            "ingest",
            "--account",
            "main",
            "--expires",
            "2099-01-01",
        ]
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("tm_")
    listing = runner.invoke(args=["tokens", "list"]).output
    assert "feeder" in listing and "main" in listing and secret not in listing
    assert secret[:10] in listing


def test_cli_refuses_bad_input(runner, tokens):
    assert runner.invoke(args=["tokens", "create", "ghost", "x", "--scope", "read"]).exit_code == 1
    assert runner.invoke(args=["tokens", "create", "bot", "x", "--scope", "admin"]).exit_code == 2
    assert runner.invoke(args=["tokens", "create", "bot", "x"]).exit_code == 2
    past = runner.invoke(
        args=["tokens", "create", "bot", "x", "--scope", "read", "--expires", "2001-01-01"]
    )
    assert past.exit_code == 1 and "future" in past.output
    bad_date = runner.invoke(
        args=["tokens", "create", "bot", "x", "--scope", "read", "--expires", "soon"]
    )
    assert bad_date.exit_code == 2
    beyond_utc = runner.invoke(
        args=[
            "tokens",
            "create",
            "bot",
            "x",
            "--scope",
            "read",
            "--expires",
            "9999-12-31T23:59-01:00",
        ]
    )
    assert beyond_utc.exit_code == 2 and "out of range" in beyond_utc.output
    assert runner.invoke(args=["tokens", "revoke", "999"]).exit_code == 1
    for command in ("create", "list", "revoke"):
        assert runner.invoke(args=["tokens", command, "--help"]).exit_code == 0


def test_account_page_creates_shows_once_and_revokes(app):
    logged_in = client_as(app, Role.ADMIN, "root")
    token = csrf_token_from(logged_in, "/account")
    response = logged_in.post(
        "/account/tokens",
        data={
            "csrf_token": token,
            "tok-name": "my feeder",
            "tok-scopes": ["ingest", "read"],
            "tok-accounts": "main, hedge",
        },
    )
    assert response.status_code == 200
    secret = re.search(r'data-testid="new-token-secret">(tm_[^<]+)<', response.text).group(1)
    assert logged_in.get("/api/v1/assets", headers=bearer(secret)).status_code == 200
    page = logged_in.get("/account").get_data(as_text=True)
    assert "my feeder" in page and secret not in page
    (row_,) = token_rows(app)
    assert row_.accounts == ["hedge", "main"]
    revoke = logged_in.post(f"/account/tokens/{row_.id}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 302
    assert logged_in.get("/api/v1/assets", headers=bearer(secret)).status_code == 401


def test_account_page_refuses_a_token_without_scope(app, logged_in):
    token = csrf_token_from(logged_in, "/account")
    response = logged_in.post("/account/tokens", data={"csrf_token": token, "tok-name": "x"})
    assert response.status_code == 400 and "at least one scope" in response.text
    assert token_rows(app) == []


def test_users_cannot_revoke_others_tokens_but_admins_can(app, tokens, logged_in):
    from tests.conftest import Auth, make_user

    tokens.create(name="bots")
    (bots,) = token_rows(app)
    token = csrf_token_from(logged_in, "/account")
    assert "bots" not in logged_in.get("/account").text
    response = logged_in.post(f"/account/tokens/{bots.id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    make_user(app, "root", role="admin")
    admin = app.test_client()
    Auth(admin).login(username="root")
    assert "bots" in admin.get("/account").text
    admin_csrf = csrf_token_from(admin, "/account")
    response = admin.post(f"/account/tokens/{bots.id}/revoke", data={"csrf_token": admin_csrf})
    assert response.status_code == 302 and token_rows(app)[0].revoked_at is not None


def test_new_secret_is_shown_once_in_the_page_body_never_in_the_title(app, logged_in):
    token = csrf_token_from(logged_in, "/account")
    response = logged_in.post(
        "/account/tokens",
        data={"csrf_token": token, "tok-name": "feeder", "tok-scopes": ["read"]},
    )
    html = response.get_data(as_text=True)
    secret = re.search(r'data-testid="new-token-secret">(tm_[^<]+)<', html).group(1)
    assert html.count(secret) == 1
    assert "<title>Account · TradingMonitor</title>" in html


def test_refused_tokens_write_nothing_at_all(app, tokens, client, runner):
    read_only = tokens.create("read")
    revoked = tokens.create("ingest")
    runner.invoke(args=["tokens", "revoke", str(token_rows(app)[-1].id)])
    usable = tokens.create("ingest")
    body = {"positions": [row()]}
    answers = []

    def refused_calls():
        answers.append(client.post(URL, json=body, headers=bearer(read_only)).status_code)
        answers.append(client.post(URL, json=body, headers=bearer(revoked)).status_code)
        answers.append(client.post(f"{URL}?token={usable}", json=body).status_code)
        answers.append(
            client.post(
                f"{URL}?access_token={usable}", json=body, headers=bearer(usable)
            ).status_code
        )

    assert writes_during(app, refused_calls) == []
    assert answers == [403, 401, 401, 401]
    assert stored_count(app) == 0
    assert all(t.last_used_at is None for t in token_rows(app))


def scope_checkboxes(client) -> set[str]:
    page = ParsedPage(client.get("/account").get_data(as_text=True))
    return {a["value"] for a in page.elements("input") if a.get("name") == "tok-scopes"}


@pytest.mark.parametrize(
    ("role", "offered"),
    [(Role.VIEWER, {"read"}), (Role.OPERATOR, {"read"}), (Role.ADMIN, {"ingest", "read"})],
)
def test_account_page_offers_only_the_scopes_the_role_may_hold(app, role, offered):
    assert scope_checkboxes(client_as(app, role)) == offered


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_crafted_page_post_for_an_ingest_token_is_refused_and_audited(app, role):
    client = client_as(app, role, "alice")
    response = client.post(
        "/account/tokens",
        data={
            "csrf_token": csrf_token_from(client, "/account"),
            "tok-name": "sneaky",
            "tok-scopes": ["ingest", "read"],
        },
    )
    assert response.status_code == 403
    assert "may not hold the ingest scope" in response.get_data(as_text=True)
    assert token_rows(app) == []
    assert events(app, Action.TOKEN_CREATE) == []
    refused = only_event(app, Action.TOKEN_REFUSE)
    assert (refused.actor_name, refused.target) == ("alice", "user:alice")
    assert refused.detail["scopes"] == ["ingest", "read"] and refused.detail["role"] == role


def test_crafted_page_post_without_csrf_is_refused_without_an_audit_row(app, logged_in):
    response = logged_in.post("/account/tokens", data={"tok-name": "x", "tok-scopes": ["ingest"]})
    assert response.status_code == 400
    assert token_rows(app) == [] and events(app, Action.TOKEN_REFUSE) == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_cli_refuses_an_ingest_token_beyond_the_role_and_audits_it(app, runner, role):
    client_as(app, role, "alice")
    result = runner.invoke(args=["tokens", "create", "alice", "feed", "--scope", "ingest"])
    assert result.exit_code == 1
    assert "may not hold the ingest scope" in result.output and "tm_" not in result.output
    assert token_rows(app) == []
    refused = only_event(app, Action.TOKEN_REFUSE)
    assert (refused.actor_name, refused.target) == ("cli", "user:alice")
    read = runner.invoke(args=["tokens", "create", "alice", "reader", "--scope", "read"])
    assert read.exit_code == 0, read.output
    assert [t.scopes for t in token_rows(app)] == [["read"]]


def test_cli_refuses_a_token_for_a_disabled_user(app, runner, tokens):
    assert runner.invoke(args=["users", "disable", "bot"]).exit_code == 0
    result = runner.invoke(args=["tokens", "create", "bot", "feed", "--scope", "read"])
    assert result.exit_code == 1 and "disabled" in result.output
    assert token_rows(app) == []


def test_demoted_admins_ingest_token_is_403_at_the_next_request(app, tokens, client):
    secret = tokens.create("ingest", "read")
    first = client.post(URL, json={"positions": [row()]}, headers=bearer(secret))
    assert first.status_code == 200
    admin = client_as(app, Role.ADMIN, "root")
    bot = user(app, "bot")
    demoted = post(admin, f"/admin/users/{bot.id}/role", f"/admin/users/{bot.id}", role="operator")
    assert demoted.status_code == 302 and user(app, "bot").role == Role.OPERATOR

    later = {"positions": [row(timestamp="2026-03-01T13:00:00Z")]}
    answers = []

    def refused_call():
        answers.append(client.post(URL, json=later, headers=bearer(secret)))

    assert writes_during(app, refused_call) == []
    assert answers[0].status_code == 403
    assert "owner may no longer use the 'ingest' scope" in answers[0].get_json()["message"]
    assert stored_count(app) == 1
    # Narrowed, not stopped: what an operator may hold still works.
    assert client.get("/api/v1/assets", headers=bearer(secret)).status_code == 200
    # The admin sees the scope the owner can no longer use struck out.
    page = admin.get(f"/admin/users/{bot.id}").get_data(as_text=True)
    assert '<del title="its owner may not use this scope now">ingest</del>' in page


def test_an_ingest_token_a_viewer_already_holds_is_refused(app, tokens, client):
    secret = tokens.create("ingest")
    # As a token made before roles bounded scopes would be.
    with app.app_context():
        db.session.execute(db.update(User).values(role=Role.VIEWER))
        db.session.commit()
    response = client.post(URL, json={"positions": [row()]}, headers=bearer(secret))
    assert response.status_code == 403
    assert stored_count(app) == 0
