"""Parallel wrong passwords at one username, against real gunicorn workers on a real database."""

import re
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import CSRF_PATTERN, create_scratch_database, drop_scratch_database
from tests.conftest import postgres_admin_url as require_postgres
from tests.deploy.conftest import (
    Deployment,
    free_port,
    production_env,
    start_gunicorn,
    stop_processes,
    wait_for_port,
)

pytestmark = pytest.mark.faults

PASSWORD = "correct horse battery staple"
WORKERS = 4
ATTEMPTS = 32
LIMIT = 5
LOCKED = "This account is temporarily locked"
REQUEST_TIMEOUT = (10, 120)


@contextmanager
def login_service(tmp: Path, database_url: str):
    """Production gunicorn with WORKERS workers, a user alice, the shipped per-user limit."""
    port = free_port()
    env = {
        **production_env(tmp, database_url, port, workers=WORKERS),
        # Only the per-username count is under test: one address sends everything here.
        "TRADINGMONITOR_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
    }
    service = Deployment(f"http://127.0.0.1:{port}", env, tmp, None)
    service.flask("db", "upgrade")
    service.flask("users", "create", "alice", "--password-stdin", stdin=f"{PASSWORD}\n")
    master = start_gunicorn(env)
    try:
        wait_for_port(port, master, seconds=90)
        yield service
    finally:
        stop_processes(master)


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, tmp_path):
    if request.param == "sqlite":
        with login_service(tmp_path, f"sqlite:///{tmp_path / 'tm.sqlite3'}") as running:
            yield running
        return
    admin_url = require_postgres()
    url = create_scratch_database(admin_url)
    try:
        with login_service(tmp_path, url) as running:
            yield running
    finally:
        drop_scratch_database(admin_url, url)


def login_form(url: str) -> tuple[str, str]:
    """(Cookie header, CSRF token) of a fresh visit to the login page."""
    page = requests.get(f"{url}/login", timeout=REQUEST_TIMEOUT)
    # The production cookie is Secure: requests would not send it over http, so by hand.
    cookie = "; ".join(f"{c.name}={c.value}" for c in page.cookies)
    return cookie, CSRF_PATTERN.search(page.text).group(1)


def post_login(url: str, form: tuple[str, str], username: str, password: str):
    cookie, token = form
    return requests.post(
        f"{url}/login",
        data={"csrf_token": token, "username": username, "password": password},
        headers={"Cookie": cookie},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT,
    )


def parallel_logins(url: str, username: str, password: str) -> list[requests.Response]:
    """ATTEMPTS logins released at once, each from its own browser session."""
    forms = [login_form(url) for _ in range(ATTEMPTS)]
    start = threading.Barrier(ATTEMPTS)
    answers = [None] * ATTEMPTS

    def attempt(i):
        start.wait()
        answers[i] = post_login(url, forms[i], username, password)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def audit_counts(database_url: str, username: str) -> dict[str, int]:
    """How many logins at `username` the audit log records, by action."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT action, count(*) FROM audit_event WHERE target = :target "
                    "AND action LIKE 'login.%' "
                    "GROUP BY action"
                ),
                {"target": f"user:{username}"},
            ).all()
    finally:
        engine.dispose()
    return dict(rows)


def flash_text(response) -> str:
    return re.search(r'class="flash flash-error" role="alert">([^<]*)<', response.text).group(1)


def test_parallel_wrong_passwords_get_no_more_password_checks_than_the_limit(service):
    answers = parallel_logins(service.url, "alice", "wrong password, again")

    assert [a.status_code for a in answers] == [200] * ATTEMPTS
    # A password check ends in login.failure (wrong password); the rest were refused before it.
    counts = audit_counts(service.env["DATABASE_URL"], "alice")
    assert counts == {"login.failure": LIMIT, "login.locked": ATTEMPTS - LIMIT}
    locked = [a for a in answers if LOCKED in a.text]
    assert len(locked) == ATTEMPTS - LIMIT
    # And the right password is refused too, until the window ends.
    right = post_login(service.url, login_form(service.url), "alice", PASSWORD)
    assert right.status_code == 200 and LOCKED in right.text


def test_a_username_nobody_has_is_locked_with_the_same_words_status_and_page(service):
    parallel_logins(service.url, "alice", "wrong password, again")
    answers = parallel_logins(service.url, "ghost", "wrong password, again")
    assert audit_counts(service.env["DATABASE_URL"], "ghost") == {
        "login.failure": LIMIT,
        "login.locked": ATTEMPTS - LIMIT,
    }
    assert sum(LOCKED in a.text for a in answers) == ATTEMPTS - LIMIT

    real = post_login(service.url, login_form(service.url), "alice", PASSWORD)
    ghost = post_login(service.url, login_form(service.url), "ghost", PASSWORD)
    assert real.status_code == ghost.status_code == 200
    assert flash_text(real).startswith(LOCKED)
    assert re.search(r"Try again in \d+ minutes?\.$", flash_text(real))

    def shape(response, name):
        # The page repeats the typed name and carries its own CSRF token and minutes left.
        body = response.text.replace(name, "NAME")
        body = re.sub(r"Try again in \d+ minutes?", "Try again in N minutes", body)
        return CSRF_PATTERN.sub("csrf", body)

    assert shape(real, "alice") == shape(ghost, "ghost")
