"""TradingMonitor: the application factory."""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

import config as config_module
from app.extensions import csrf, db, limiter, login_manager, migrate
from app.ops.logs import configure_logging
from app.ops.rate_limits import warn_if_unshared

log = logging.getLogger(__name__)

# Copied from node_modules by `make assets`; without them pages lose styles, live
# refresh and charts, so the factory warns (it still starts: the API needs none).
VENDOR_ASSETS = ("pico.min.css", "htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css")


def create_app(config: type | str | Mapping | None = None) -> Flask:
    """Build the app: config → extensions → blueprints → CLI → error handlers.

    `config` is a config class, its name ("testing", "production", …) or a mapping
    of settings applied over the class named by TRADINGMONITOR_CONFIG.
    """
    app = Flask(__name__, instance_relative_config=True)
    load_config(app, config)
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    register_error_handlers(app)
    check_vendor_assets(app)
    warn_if_unshared(app)
    return app


def load_config(app: Flask, config) -> None:
    overrides: Mapping = {}
    if isinstance(config, Mapping):
        overrides, config = config, None
    if isinstance(config, str):
        config = config_module.CONFIGS[config]
    config_class = config or config_module.config_from_environment()
    app.config.from_object(config_class)
    # Applied first as well, so overrides can switch off the instance file or env.
    app.config.update(overrides)

    if app.config["READ_INSTANCE_CONFIG"]:
        app.config.from_pyfile("config.py", silent=True)
    if app.config["READ_ENVIRONMENT"]:
        for name in ("SECRET_KEY", "DATABASE_URL"):
            if os.environ.get(name):
                app.config[name] = os.environ[name]
        app.config.from_prefixed_env("TRADINGMONITOR")
    app.config.update(overrides)

    if app.config.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        path = Path(app.instance_path) / "tradingmonitor.sqlite3"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path}"
    config_module.check_chart_max_points(app.config["CHART_MAX_POINTS"])
    if app.config["NAME"] == "production":
        config_module.check_secret_key(app.config.get("SECRET_KEY"))
    elif not app.config.get("SECRET_KEY"):
        raise RuntimeError(
            "SECRET_KEY is not set. `make run` writes one to instance/config.py; "
            "or export SECRET_KEY."
        )

    proxies = {
        key: app.config[f"PROXY_FIX_{key.upper()}"] for key in ("x_for", "x_proto", "x_host")
    }
    if any(proxies.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **proxies)


def _configure_sqlite(dbapi_connection, _record, busy_timeout_ms: int) -> None:
    # WAL lets readers and a writer work at once; the busy timeout makes writers
    # wait for each other instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _engine_options(app: Flask) -> dict:
    """The configured engine options, with what each database needs from us."""
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    connect_args = dict(options.get("connect_args", {}))
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        # A file has no stale connections to detect; the ping would cost every request.
        options.pop("pool_pre_ping", None)
        connect_args.setdefault("timeout", app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000)
    elif url.startswith("postgresql"):
        # The chart's bucket queries look costly to the planner, so PostgreSQL's JIT
        # compiles them: ~100 ms of compiling for a ~20 ms query. Our queries are
        # short; a server-wide jit=on is overridden for our connections only.
        connect_args.setdefault("options", "-c jit=off")
    options["connect_args"] = connect_args
    return options


def register_extensions(app: Flask) -> None:
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app)
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            timeout = app.config["SQLITE_BUSY_TIMEOUT_MS"]
            event.listen(
                db.engine,
                "connect",
                lambda conn, rec: _configure_sqlite(conn, rec, timeout),
            )
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    # Limits are declared on the API blueprint (app.api.routes); no default limits,
    # so pages are not limited.
    limiter.init_app(app)

    from app.auth.access import enforce_access, unauthorized
    from app.auth.sessions import load_session_user

    login_manager.init_app(app)
    login_manager.session_protection = None  # sessions are checked server-side
    login_manager.user_loader(load_session_user)
    login_manager.unauthorized_handler(unauthorized)
    app.before_request(enforce_access)

    from app.auth import oidc

    oidc.init_app(app)

    from app.templating import register_template_filters

    register_template_filters(app)


def register_blueprints(app: Flask) -> None:
    from app.admin.policy_routes import bp as sign_in_policy_bp
    from app.admin.routes import bp as admin_bp
    from app.alerts.channel_routes import bp as alert_channels_bp
    from app.alerts.grouping_routes import bp as alert_grouping_bp
    from app.alerts.policy_routes import bp as alert_policies_bp
    from app.alerts.routes import bp as alerts_bp
    from app.alerts.rule_routes import bp as alert_rules_bp
    from app.api.docs import docs_bp as api_docs_bp
    from app.api.routes import bp as api_bp
    from app.auth.account_routes import bp as account_bp
    from app.auth.digest_routes import bp as digest_settings_bp
    from app.auth.routes import bp as auth_bp
    from app.auth.second_factor_routes import bp as second_factor_bp
    from app.ops.routes import bp as ops_bp
    from app.positions.limit_routes import bp as limits_bp
    from app.positions.routes import bp as positions_bp
    from app.positions.value_routes import bp as value_bp
    from app.recon.define_routes import bp as recon_definitions_bp
    from app.recon.routes import bp as recon_bp

    app.register_blueprint(auth_bp, url_prefix="")
    app.register_blueprint(second_factor_bp, url_prefix="")
    app.register_blueprint(account_bp, url_prefix="/account")
    app.register_blueprint(digest_settings_bp, url_prefix="/account")
    app.register_blueprint(positions_bp, url_prefix="")
    app.register_blueprint(limits_bp, url_prefix="")
    app.register_blueprint(value_bp, url_prefix="")
    app.register_blueprint(recon_bp, url_prefix="/recon")
    app.register_blueprint(recon_definitions_bp, url_prefix="/recon/definitions")
    app.register_blueprint(alerts_bp, url_prefix="/alerts")
    app.register_blueprint(alert_rules_bp, url_prefix="/alerts")
    app.register_blueprint(alert_channels_bp, url_prefix="/alerts")
    app.register_blueprint(alert_policies_bp, url_prefix="/alerts")
    app.register_blueprint(alert_grouping_bp, url_prefix="/alerts")
    app.register_blueprint(ops_bp, url_prefix="")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(sign_in_policy_bp, url_prefix="/admin/sign-in-policy")
    # Token-only routes: a cookie never authorises them, so CSRF does not apply.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(api_docs_bp, url_prefix="/docs")


def register_commands(app: Flask) -> None:
    from app.alerts.cli import alerts_cli
    from app.auth.cli import users_cli
    from app.auth.oidc_cli import auth_cli
    from app.auth.token_cli import tokens_cli
    from app.ops.serve import serve_command
    from app.positions.cli import positions_cli, seed_cli
    from app.recon.cli import recon_cli

    register_backup_command()
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(auth_cli)
    app.cli.add_command(seed_cli)
    app.cli.add_command(positions_cli)
    app.cli.add_command(alerts_cli)
    app.cli.add_command(recon_cli)
    app.cli.add_command(serve_command)


def register_backup_command() -> None:
    """Add `backup` to Flask-Migrate's `flask db` group."""
    # `flask db` comes from Flask-Migrate's plugin entry point, which the flask
    # command looks up before app.cli, so the command joins that group itself.
    from flask_migrate.cli import db as db_group

    from app.ops.cli import backup_command

    db_group.add_command(backup_command)


def register_error_handlers(app: Flask) -> None:
    from app.ops.errors import register_error_handlers as register
    from app.ops.headers import register_security_headers

    register(app)
    register_security_headers(app)


def check_vendor_assets(app: Flask) -> None:
    vendor = Path(app.static_folder) / "vendor"
    missing = [name for name in VENDOR_ASSETS if not (vendor / name).exists()]
    if missing:
        log.warning(
            "front-end assets missing from %s: %s — run `make assets` "
            "(pages will lack styles, live refresh and charts until then)",
            vendor,
            ", ".join(missing),
        )
