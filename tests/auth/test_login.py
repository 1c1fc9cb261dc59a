"""Login: passwords, throttling, lockout, hashing."""

import logging
import re
import time

import pytest
from argon2 import extract_parameters

from app.auth.models import LoginCounter, Role, User
from app.auth.passwords import PasswordPolicyError, hash_password
from app.extensions import db
from tests.conftest import PASSWORD, Auth, build_app, make_user


def attempts(app, key="user:alice") -> int:
    with app.app_context():
        counter = db.session.get(LoginCounter, key)
        return counter.attempts if counter else 0


def test_login_with_right_password_redirects_to_overview(client, auth, viewer):
    response = auth.login()
    assert response.status_code == 302
    assert response.location == "/"
    assert client.get("/").status_code == 200


def test_login_is_case_insensitive_on_username(client, auth, viewer):
    assert auth.login(username="ALICE").status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_answer(app, client, auth, viewer):
    wrong = auth.login(password="wrong password here")
    unknown = auth.login(username="nobody", password="wrong password here")
    assert wrong.status_code == unknown.status_code == 200
    strip = lambda r: r.get_data(as_text=True).split('name="csrf_token"')[0]  # noqa: E731
    assert strip(wrong) == strip(unknown).replace("nobody", "alice")
    assert "Invalid username or password" in wrong.get_data(as_text=True)


def test_unknown_user_takes_similar_time_as_wrong_password(sqlite_url):
    app = build_app(
        sqlite_url,
        PASSWORD_TIME_COST=2,
        PASSWORD_MEMORY_COST_KIB=32 * 1024,
        PASSWORD_PARALLELISM=1,
    )
    with app.app_context():
        db.create_all()
    make_user(app, "alice")
    auth = Auth(app.test_client())

    def timed(username):
        start = time.perf_counter()
        auth.login(username=username, password="wrong password here")
        return time.perf_counter() - start

    timed("alice")  # warm the dummy hash
    known = min(timed("alice") for _ in range(3))
    unknown = min(timed(f"ghost{i}") for i in range(3))
    # Both pay for one argon2 verification; without the dummy check unknown is ~0.
    assert unknown > known * 0.5
    assert known > unknown * 0.5


def test_five_failures_lock_the_username_even_with_the_right_password(app, client, auth, viewer):
    for attempt in range(5):
        auth.login(username="Alice" if attempt % 2 else "alice", password="wrong password!!")
    refused = auth.login()
    assert refused.status_code == 200
    assert "This account is temporarily locked" in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_lockout_holds_for_other_clients_and_workers(sqlite_url, app, viewer):
    for _ in range(5):
        Auth(app.test_client()).login(password="wrong password!!")
    # A second app on the same database stands in for another gunicorn worker.
    other_worker = build_app(sqlite_url)
    response = Auth(other_worker.test_client()).login(environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 200
    assert "This account is temporarily locked" in response.get_data(as_text=True)


def test_locked_page_says_when_to_retry_in_the_same_words_for_a_username_nobody_has(app, viewer):
    for name in ("alice", "ghost"):
        for _ in range(5):
            Auth(app.test_client()).login(username=name, password="wrong password!!")
    real = Auth(app.test_client()).login()
    ghost = Auth(app.test_client()).login(username="ghost")
    assert real.status_code == ghost.status_code == 200
    message = "This account is temporarily locked after too many failed logins. Try again in"
    assert message in real.text
    assert re.search(r"Try again in [1-5] minutes?\.", real.text)
    strip = lambda r: r.text.split('name="csrf_token"')[0]  # noqa: E731
    assert strip(real) == strip(ghost).replace("ghost", "alice")


def test_a_locked_attempt_checks_no_password(app, viewer, caplog):
    app.config["LOGIN_MAX_FAILURES_PER_USER"] = 1
    Auth(app.test_client()).login(password="wrong password!!")
    caplog.clear()
    with caplog.at_level("DEBUG", logger="app.auth.routes"):
        Auth(app.test_client()).login()
    assert any("locked" in r.getMessage() for r in caplog.records)
    assert not any("login failed" in r.getMessage() for r in caplog.records)
    assert attempts(app) == 2


def test_successful_logins_give_the_address_its_attempts_back(app, viewer):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for _ in range(6):
        client = app.test_client()
        assert Auth(client).login().status_code == 302
    assert attempts(app, "address:127.0.0.1") == 0


def test_success_resets_the_failure_count(app, client, auth, viewer):
    for _ in range(4):
        auth.login(password="wrong password!!")
    assert auth.login().status_code == 302
    assert attempts(app) == 0
    auth.logout()
    for _ in range(4):
        auth.login(password="wrong password!!")
    assert auth.login().status_code == 302


def test_failures_older_than_the_window_do_not_count(app, client, auth, viewer):
    app.config["LOGIN_FAILURE_WINDOW_SECONDS"] = 1
    for _ in range(5):
        auth.login(password="wrong password!!")
    time.sleep(1.1)
    assert auth.login().status_code == 302


def test_many_failures_from_one_address_get_429_with_retry_after(app, client, auth, viewer):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for i in range(3):
        auth.login(username=f"user{i}", password="wrong password!!")
    response = auth.login()
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 300
    assert client.get("/").status_code == 302


def test_forged_forwarded_for_does_not_reset_the_address_count(sqlite_url, viewer, app):
    proxied = build_app(sqlite_url, PROXY_FIX_X_FOR=1, LOGIN_MAX_FAILURES_PER_ADDRESS=3)
    client = proxied.test_client()
    auth = Auth(client)
    # nginx appends the real client address last; anything before it is the client's.
    for i in range(3):
        auth.login(
            username=f"user{i}",
            password="wrong password!!",
            headers={"X-Forwarded-For": f"1.2.3.{i}, 203.0.113.7"},
        )
    response = auth.login(headers={"X-Forwarded-For": "8.8.8.8, 203.0.113.7"})
    assert response.status_code == 429
    other = Auth(proxied.test_client()).login(headers={"X-Forwarded-For": "198.51.100.1"})
    assert other.status_code == 302


def test_disabled_user_cannot_log_in(app, client, auth):
    make_user(app, "bob", active=False)
    response = auth.login(username="bob")
    assert response.status_code == 200
    assert "Invalid username or password" in response.get_data(as_text=True)


def test_login_logs_failures_without_the_password(app, client, auth, viewer, caplog):
    with caplog.at_level(logging.INFO):
        auth.login(password="secret-wrong-password")
        auth.login()
    assert "login failed" in caplog.text and "login: user=alice" in caplog.text
    assert "secret-wrong-password" not in caplog.text
    assert PASSWORD not in caplog.text


def test_newlines_in_username_stay_on_one_log_line(client, auth, caplog):
    with caplog.at_level(logging.WARNING):
        auth.login(username="eve\nFAKE login: user=admin", password="wrong password!!")
    (record,) = [r for r in caplog.records if "login failed" in r.getMessage()]
    assert "\n" not in record.getMessage()


def test_production_hashes_with_argon2id_at_asvs_strength():
    from config import ProductionConfig

    app = build_app(
        "sqlite://",
        **{
            k: getattr(ProductionConfig, k)
            for k in dir(ProductionConfig)
            if k.startswith("PASSWORD_")
        },
    )
    with app.app_context():
        encoded = hash_password("a perfectly fine passphrase")
    params = extract_parameters(encoded)
    assert encoded.startswith("$argon2id$")
    # ASVS 5.0 appendix C / RFC 9106: argon2id with at least 19 MiB and t=2.
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2


@pytest.mark.parametrize(
    "password, ok",
    [
        ("short", False),
        ("x" * 11, False),
        ("x" * 12, True),
        ("y" * 64, True),
        ("z" * 128, True),
        ("z" * 129, False),
    ],
)
def test_password_policy_lengths(app, password, ok):
    with app.app_context():
        if ok:
            assert hash_password(password).startswith("$argon2id$")
        else:
            with pytest.raises(PasswordPolicyError):
                hash_password(password)


def test_long_passwords_are_not_truncated(app, client, auth):
    long_password = "p" * 100 + "A"
    make_user(app, "carol", password=long_password)
    assert auth.login(username="carol", password="p" * 100 + "B").status_code == 200
    assert auth.login(username="carol", password=long_password).status_code == 302


def test_fresh_database_has_no_default_account(app):
    with app.app_context():
        assert db.session.execute(db.select(User)).first() is None


def test_login_without_csrf_token_is_rejected(app, client, viewer):
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_already_logged_in_user_visiting_login_goes_to_next(client, auth, viewer):
    auth.login()
    assert client.get("/login?next=/account").location == "/account"


def test_roles_are_ordered(app):
    make_user(app, "op", role=Role.OPERATOR)
    with app.app_context():
        op = db.session.execute(db.select(User).filter_by(username="op")).scalar_one()
        assert op.has_role(Role.VIEWER) and op.has_role(Role.OPERATOR)
        assert not op.has_role(Role.ADMIN)


def test_lockout_refuses_the_right_password_under_any_case_of_the_username(app, viewer):
    for name in ("alice", "ALICE", "Alice", "aLiCe", "alicE"):
        Auth(app.test_client()).login(username=name, password="wrong password!!")
    for name in ("alice", "ALICE", "Alice"):
        response = Auth(app.test_client()).login(username=name)
        assert response.status_code == 200, name
        assert "This account is temporarily locked" in response.get_data(as_text=True)


def test_forwarded_for_is_ignored_without_a_proxy_in_front(app, client, auth, viewer):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for i in range(3):
        auth.login(
            username=f"user{i}",
            password="wrong password!!",
            headers={"X-Forwarded-For": f"192.0.2.{i}"},
        )
    response = auth.login(headers={"X-Forwarded-For": "198.51.100.77"})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0


def test_a_password_over_128_characters_is_refused_at_login_not_cut(app, client, auth):
    exactly_128 = "q" * 127 + "Z"
    make_user(app, "dave", password=exactly_128)
    for longer in (exactly_128 + "Z", exactly_128 + "x" * 1000):
        response = auth.login(username="dave", password=longer)
        assert response.status_code in (200, 400)
        assert client.get("/").status_code == 302
    assert auth.login(username="dave", password=exactly_128).status_code == 302


def test_logged_in_user_visiting_login_with_an_offsite_next_stays_here(client, auth, viewer):
    auth.login()
    for target in ("//evil.example/", "/\\evil.example", "javascript:alert(1)", "%2F%2Fevil"):
        response = client.get("/login", query_string={"next": target})
        assert response.status_code == 302 and response.location == "/", target


def test_terminal_escapes_in_a_username_stay_one_plain_log_line(client, auth, caplog):
    from app.ops.logs import TEXT_FORMAT, JsonLinesFormatter, SingleLineFormatter

    with caplog.at_level(logging.WARNING):
        auth.login(username="eve\x1b[2J\r\nlogin: user=admin\x07", password="wrong password!!")
    (record,) = [r for r in caplog.records if "login failed" in r.getMessage()]
    record.request_id = "-"
    for formatter in (SingleLineFormatter(TEXT_FORMAT), JsonLinesFormatter()):
        line = formatter.format(record)
        assert len(line.splitlines()) == 1
        assert not any(ord(c) < 32 or ord(c) == 127 for c in line), line


@pytest.mark.parametrize("name", ["development", "production"])
def test_only_the_testing_config_lowers_the_hash_cost(name):
    from config import CONFIGS, Config

    chosen = CONFIGS[name]
    assert chosen.PASSWORD_MEMORY_COST_KIB >= 19 * 1024 and chosen.PASSWORD_TIME_COST >= 2
    assert chosen.PASSWORD_MIN_LENGTH == Config.PASSWORD_MIN_LENGTH == 12
    assert chosen.PASSWORD_MAX_LENGTH == 128
