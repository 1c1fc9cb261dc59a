"""Shared fixtures: apps on SQLite (always) and PostgreSQL (when configured)."""

import os
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app
from app.auth.models import Role, User
from app.auth.passwords import hash_password
from app.extensions import db
from config import TestingConfig

PASSWORD = "correct horse battery"


def postgres_admin_url() -> str | None:
    """TEST_DATABASE_URL, or skip (fail when REQUIRE_POSTGRES=1)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL")
    return url


def create_scratch_database(admin_url: str) -> str:
    """Create an empty PostgreSQL database and return its URL."""
    name = f"tm_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_scratch_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """One scratch PostgreSQL database for the session, its schema from the migrations.

    As in production: the snapshot history partitioned by month, which db.create_all()
    would not give.
    """
    admin_url = postgres_admin_url()
    url = create_scratch_database(admin_url)
    app = create_app({**_testing(url)})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    yield url
    drop_scratch_database(admin_url, url)


def _testing(url: str, **overrides) -> dict:
    settings = {key: getattr(TestingConfig, key) for key in dir(TestingConfig) if key.isupper()}
    settings.update(SQLALCHEMY_DATABASE_URI=url, READ_ENVIRONMENT=False, **overrides)
    return settings


def build_app(url: str, **overrides):
    """A TestingConfig app on `url`, with settings overridden."""
    return create_app(_testing(url, **overrides))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def app(sqlite_url):
    """An app on a fresh SQLite file."""
    app = build_app(sqlite_url)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


def _truncate_all():
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.session.commit()


@pytest.fixture(params=["sqlite", "postgres"])
def any_app(request, tmp_path):
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        app = build_app(f"sqlite:///{tmp_path / 'test.sqlite3'}")
        with app.app_context():
            db.create_all()
    else:
        app = build_app(request.getfixturevalue("postgres_url"))
        with app.app_context():
            _truncate_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def make_user(app, username="alice", role=Role.VIEWER, password=PASSWORD, active=True):
    with app.app_context():
        user = User(
            username=username, password_hash=hash_password(password), role=role, active=active
        )
        db.session.add(user)
        db.session.commit()
        return user.id


class ParsedPage(HTMLParser):
    """The elements a browser would build from a page, with its text and attributes."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)

    def shows_as_text(self, value: str) -> bool:
        return any(value in text for text in self.texts)

    def elements(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def writes_during(app, action) -> list[str]:
    """The INSERT/UPDATE/DELETE statements the app sent while `action` ran."""
    writes = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return writes


CSRF_PATTERN = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')


def csrf_token_from(client, path="/login") -> str:
    response = client.get(path)
    match = CSRF_PATTERN.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


class Auth:
    """Log a test client in and out through the real forms."""

    def __init__(self, client):
        self.client = client

    def login(self, username="alice", password=PASSWORD, **extra):
        token = csrf_token_from(self.client, "/login")
        return self.client.post(
            "/login",
            data={"csrf_token": token, "username": username, "password": password},
            **extra,
        )

    def logout(self):
        token = csrf_token_from(self.client, "/account")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def viewer(app):
    """A viewer named alice, with the standard test password."""
    return make_user(app, "alice", Role.VIEWER)


def client_as(app, role, username=None):
    """A new client of `app`, logged in as a new user with `role` (named after it by default)."""
    username = username or role
    make_user(app, username, role=role)
    client = app.test_client()
    assert Auth(client).login(username=username).status_code == 302
    return client


def change_password(client, current, new, csrf_token=None):
    """POST the account page's password form (with a fresh CSRF token unless given one)."""
    return client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token or csrf_token_from(client, "/account"),
            "pw-current_password": current,
            "pw-new_password": new,
            "pw-confirm_password": new,
        },
    )


@pytest.fixture
def logged_in(app, client, auth, viewer):
    """A client logged in as the viewer alice."""
    response = auth.login()
    assert response.status_code == 302
    return client


@pytest.fixture
def viewer_client(any_app):
    """A client logged in as the viewer alice, on SQLite and on PostgreSQL."""
    return client_as(any_app, Role.VIEWER, "alice")


@dataclass
class LiveServer:
    url: str
    app: object


@contextmanager
def serve(app):
    """Serve an app with werkzeug on a free loopback port, threaded, until the block ends."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    """A real OpenID Connect provider (oidc-provider-mock) on a loopback port, for the run."""
    from tests.auth.oidc_provider import running_provider

    with running_provider(tmp_path_factory.mktemp("oidc-provider")) as provider:
        yield provider


@pytest.fixture
def live_server(app):
    """The SQLite app on a real socket."""
    with serve(app) as server:
        yield server
