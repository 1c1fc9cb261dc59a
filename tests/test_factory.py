"""The factory and configuration."""

import pytest

import config
from app import create_app
from tests.conftest import build_app


def production(secret, tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'p.sqlite3'}")
    settings = {"READ_INSTANCE_CONFIG": False}
    if secret is not None:
        settings["SECRET_KEY"] = secret
    monkeypatch.setenv("TRADINGMONITOR_CONFIG", "production")
    return create_app(settings)


@pytest.mark.parametrize(
    "secret",
    [None, "", "dev", "changeme", "short-but-not-default", "x" * 31],
    ids=["missing", "empty", "dev", "changeme", "short", "31-bytes"],
)
def test_production_refuses_missing_default_or_short_secret(secret, tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        production(secret, tmp_path, monkeypatch)


def test_production_starts_with_a_strong_secret_and_secure_cookies(tmp_path, monkeypatch):
    app = production("k" * 16 + "0123456789abcdef0123", tmp_path, monkeypatch)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert app.config["HSTS_SECONDS"] > 0


def test_production_reads_secret_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADINGMONITOR_CONFIG", "production")
    monkeypatch.setenv("SECRET_KEY", "e" * 40)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'p.sqlite3'}")
    app = create_app({"READ_INSTANCE_CONFIG": False})
    assert app.config["SECRET_KEY"] == "e" * 40
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("p.sqlite3")


def test_test_config_is_passed_into_the_factory(sqlite_url):
    app = build_app(sqlite_url, STALE_AFTER_SECONDS=7)
    assert app.testing
    assert app.config["STALE_AFTER_SECONDS"] == 7
    assert app.config["SQLALCHEMY_DATABASE_URI"] == sqlite_url


@pytest.mark.parametrize("value", ["0", "99", "100001", "1e3", "'many'", "true", "[1000]"])
def test_a_chart_point_budget_that_is_not_a_count_is_refused_at_start(value, monkeypatch):
    with pytest.raises(RuntimeError, match="CHART_MAX_POINTS"):
        app_from_environment(monkeypatch, TRADINGMONITOR_CHART_MAX_POINTS=value)


def test_a_chart_point_budget_from_the_environment_is_used(monkeypatch):
    app = app_from_environment(monkeypatch, TRADINGMONITOR_CHART_MAX_POINTS="2500")
    assert app.config["CHART_MAX_POINTS"] == 2500


def app_from_environment(monkeypatch, **environment):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TRADINGMONITOR_CONFIG", "testing")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return create_app({"READ_ENVIRONMENT": True, "READ_INSTANCE_CONFIG": False})


def test_config_can_be_named(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app("testing")
    assert app.config["NAME"] == "testing"


def test_unknown_config_name_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRADINGMONITOR_CONFIG", "staging")
    with pytest.raises(RuntimeError, match="staging"):
        config.config_from_environment()


def test_default_database_is_sqlite_in_instance_folder(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"SECRET_KEY": "s" * 40, "READ_ENVIRONMENT": False})
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    assert uri.startswith("sqlite:///") and uri.endswith("instance/tradingmonitor.sqlite3")


def test_sqlite_connections_use_wal_and_busy_timeout(app):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5_000


def test_postgresql_connections_turn_jit_off(postgres_url):
    # JIT compiling cost the chart's bucket queries ~100 ms each (bench/series.py).
    from app.extensions import db

    app = build_app(postgres_url)
    with app.app_context(), db.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    with app.app_context():
        db.engine.dispose()


def test_missing_front_end_assets_warn_to_run_make_assets_without_failing(
    sqlite_url, monkeypatch, caplog
):
    import app as app_package

    monkeypatch.setattr(app_package, "VENDOR_ASSETS", ("htmx.min.js", "not-copied-yet.js"))
    with caplog.at_level("WARNING", logger="app"):
        app = build_app(sqlite_url)

    assert app is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "not-copied-yet.js" in warnings[0] and "htmx.min.js" not in warnings[0]
    assert "run `make assets`" in warnings[0]


def test_no_asset_warning_when_every_file_is_there(sqlite_url, monkeypatch, caplog):
    import app as app_package

    monkeypatch.setattr(app_package, "VENDOR_ASSETS", ("htmx.min.js",))
    with caplog.at_level("WARNING", logger="app"):
        build_app(sqlite_url)

    assert "make assets" not in caplog.text


@pytest.mark.parametrize(
    "secret",
    [config.TestingConfig.SECRET_KEY, "replace-with-64-hex-characters", "CHANGEME"],
    ids=["testing-key", "env-example-placeholder", "upper-case-default"],
)
def test_production_refuses_secrets_published_in_this_repository(secret, tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        production(secret, tmp_path, monkeypatch)
