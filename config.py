"""Configuration classes; values are read from the environment inside create_app."""

import os

MIN_SECRET_KEY_BYTES = 32
WEAK_SECRET_KEYS = {"dev", "secret", "changeme", "change-me", "development", "test"}


class Config:
    """Defaults shared by every environment."""

    NAME = "base"
    SECRET_KEY: str | None = None
    # Filled in by create_app: instance/tradingmonitor.sqlite3 unless DATABASE_URL is set.
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # How long a SQLite writer waits for another's lock. Writes take milliseconds, so
    # 5 s absorbs any queue of concurrent writers (tests/faults prove 8 against 4
    # workers), while a stuck lock becomes a 503 long before gunicorn's 30 s timeout
    # would kill the worker.
    SQLITE_BUSY_TIMEOUT_MS = 5_000
    DATABASE_RETRY_AFTER_SECONDS = 5

    # Read DATABASE_URL, SECRET_KEY and TRADINGMONITOR_* from the environment.
    READ_ENVIRONMENT = True
    READ_INSTANCE_CONFIG = True

    SESSION_COOKIE_NAME = "tm_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    SESSION_IDLE_TIMEOUT_SECONDS = 30 * 60
    SESSION_ABSOLUTE_TIMEOUT_SECONDS = 12 * 60 * 60
    # last_seen is written at most this often, so reads stay reads.
    SESSION_TOUCH_INTERVAL_SECONDS = 60

    # argon2id parameters (ASVS 5.0 appendix C / RFC 9106 second recommendation).
    PASSWORD_TIME_COST = 3
    PASSWORD_MEMORY_COST_KIB = 64 * 1024
    PASSWORD_PARALLELISM = 4
    PASSWORD_MIN_LENGTH = 12
    PASSWORD_MAX_LENGTH = 128

    LOGIN_MAX_FAILURES_PER_USER = 5
    LOGIN_MAX_FAILURES_PER_ADDRESS = 20
    LOGIN_FAILURE_WINDOW_SECONDS = 5 * 60
    # The second factor: how long a correct password waits for its code, and the
    # name authenticator apps show beside the account.
    SECOND_FACTOR_PENDING_SECONDS = 5 * 60
    SECOND_FACTOR_ISSUER = "TradingMonitor"

    WTF_CSRF_TIME_LIMIT = None  # tied to the session, which has its own limits
    WTF_CSRF_SSL_STRICT = True

    # Number of proxies in front of the app whose X-Forwarded-* headers are trusted.
    PROXY_FIX_X_FOR = 0
    PROXY_FIX_X_PROTO = 0
    PROXY_FIX_X_HOST = 0

    # Notifications: retried with exponential backoff until delivered.
    NOTIFY_RETRY_BASE_SECONDS = 10
    NOTIFY_RETRY_MAX_SECONDS = 15 * 60
    NOTIFY_TIMEOUT_SECONDS = 10
    NOTIFY_LEASE_SECONDS = 60
    SMTP_HOST = "localhost"
    SMTP_PORT = 25
    SMTP_STARTTLS = False
    SMTP_USERNAME = None
    SMTP_PASSWORD = None
    MAIL_FROM = "tradingmonitor@localhost"
    # The address people open the app at (https://tm.example.com, or with a path
    # prefix), for links in notifications; TRADINGMONITOR_PUBLIC_URL sets it. Unset,
    # messages carry no links and queueing one logs a warning: a guess from a request
    # or the bind address would send the desk to localhost.
    PUBLIC_URL: str | None = None
    # The worker delivers new notifications between its passes: on PostgreSQL when the
    # NOTIFY of their commit arrives, on SQLite by an indexed look at the outbox this often.
    OUTBOX_POLL_SECONDS = 0.25
    # Alertmanager channels: firing alerts are re-sent this often (Alertmanager ends an
    # alert nobody re-sends); each send says it ends 4 re-sends later unless refreshed.
    ALERTMANAGER_RESEND_SECONDS = 60
    # Dead man's switch (app.alerts.deadman): while the worker, the database and the
    # feeds are healthy, the worker POSTs to this URL every DEADMAN_INTERVAL_SECONDS;
    # when not, to the URL + "/fail" with the reason (healthchecks.io's convention).
    # Unset: no beats. TRADINGMONITOR_DEADMAN_URL sets it.
    DEADMAN_URL: str | None = None
    DEADMAN_INTERVAL_SECONDS = 60

    # Company sign-in (OpenID Connect); off while OIDC_ISSUER is unset. Each is set by
    # TRADINGMONITOR_OIDC_<NAME>; app.auth.oidc checks them when the app is built.
    OIDC_ISSUER: str | None = None  # discovery at <issuer>/.well-known/openid-configuration
    OIDC_CLIENT_ID: str | None = None
    OIDC_CLIENT_SECRET: str | None = None
    OIDC_SCOPES = "openid profile email"
    # The button says "Sign in with <OIDC_PROVIDER_NAME>".
    OIDC_PROVIDER_NAME = "your company account"
    # The claim holding the user's groups (a dotted path such as realm_access.roles
    # reaches into an object), and the groups that give each role: comma-separated,
    # or a JSON list when a name holds a comma. The highest role matched wins.
    OIDC_GROUPS_CLAIM = "groups"
    OIDC_ADMIN_GROUPS: str | list[str] = ""
    OIDC_OPERATOR_GROUPS: str | list[str] = ""
    OIDC_VIEWER_GROUPS: str | list[str] = ""
    # The role of a user in no mapped group; empty: such users are refused.
    OIDC_DEFAULT_ROLE = ""
    OIDC_TIMEOUT_SECONDS = 10

    # How often live pages (overview, alerts, the firing badge) refresh themselves
    # while their tab is visible; TRADINGMONITOR_LIVE_REFRESH_SECONDS overrides it.
    LIVE_REFRESH_SECONDS = 5

    # /readyz fails and every page shows a banner when the alert worker
    # (`flask alerts run`) has missed 3 passes plus this grace. Required: a
    # database where no worker ever ran is a failure too — in development as in
    # production, since without the worker stale feeds and notifications are silent.
    ALERT_WORKER_GRACE_SECONDS = 30
    ALERT_WORKER_REQUIRED = True
    # /readyz compares the database's migration with the code's.
    READYZ_CHECK_MIGRATIONS = True

    # "text" (one line per event) or "json" (one JSON object per line, for shippers).
    LOG_FORMAT = "text"
    LOG_LEVEL = "INFO"

    # /metrics answers a bearer token equal to METRICS_TOKEN, or a client address in
    # one of these networks (e.g. ["127.0.0.1/32"] for a local Prometheus); else 401.
    METRICS_TOKEN: str | None = None
    METRICS_ALLOWED_NETWORKS: list[str] = []

    # Decimals pages show an asset's amounts with, e.g. {"BTC": 4, "ETH": 3}; the exact
    # value stays on hover, in CSV and in the API. An asset not named here shows the
    # largest number of decimals among its latest amounts, at most 8 (app.display).
    # TRADINGMONITOR_DISPLAY_PRECISION='{"BTC": 4}' (JSON) sets it.
    DISPLAY_PRECISION: dict[str, int] = {}
    # The currency prices and notionals are in (what the trading system sends), and
    # the decimals pages show notionals with (rounded half-even; exact on hover).
    QUOTE_CURRENCY = "USD"
    QUOTE_PRECISION = 2

    # PostgreSQL keeps the snapshot history in one partition per UTC "month" or ISO
    # "week"; the worker and `flask positions partitions` create the current period's
    # and this many after it. SQLite keeps one table.
    POSITION_PARTITION_INTERVAL = "month"
    POSITION_PARTITIONS_AHEAD = 3

    STALE_AFTER_SECONDS = 5 * 60
    # How far ahead of our clock a snapshot's time may be (the sender's clock may run
    # ahead); later ones are refused. TRADINGMONITOR_CLOCK_SKEW_SECONDS overrides it.
    CLOCK_SKEW_SECONDS = 5 * 60
    HISTORY_PAGE_SIZE = 100
    # Points one chart answers at most, for all its accounts together; past them each
    # account's line is cut into buckets of equal time, each keeping its first, last,
    # lowest and highest snapshot, so no spike is lost, only detail within a bucket.
    # 1,000 is 125 buckets a line for an asset held in two accounts: about 9 px each
    # across a laptop's chart. Every point costs the request (bench/README.md, scale.py).
    CHART_MAX_POINTS = 1_000
    AUDIT_PAGE_SIZE = 100
    DEFAULT_TIMEZONE = "UTC"
    HSTS_SECONDS = 0
    MAX_CONTENT_LENGTH = 5 * 1024 * 1024

    # Per API token (or per address without one). Use redis://… so every worker
    # and host shares the counters.
    API_RATE_LIMIT = "600/minute"
    RATELIMIT_STORAGE_URI = "memory://"
    # While that storage is unreachable, count per process rather than refuse ingest;
    # /readyz says so. A short timeout keeps a lost Redis from stalling requests.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
    # Worker processes serving the app (deploy/gunicorn.conf.py sets it): with more
    # than one, in-memory rate-limit counters are per process, which the app warns of.
    WEB_WORKERS = 1
    # Off: the library would stamp its own Retry-After on every response, 503s
    # included; 429s get theirs from the error handler.
    RATELIMIT_HEADERS_ENABLED = False


class DevelopmentConfig(Config):
    """Local development: `make run`."""

    NAME = "development"


class TestingConfig(Config):
    """The test suite: fast hashing, no environment, no instance file."""

    NAME = "testing"
    TESTING = True
    READ_ENVIRONMENT = False
    READ_INSTANCE_CONFIG = False
    SECRET_KEY = "testing-secret-key-that-is-long-enough-0123456789"  # noqa: S105
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    # Lowered here only: tests hash many passwords.
    PASSWORD_TIME_COST = 1
    PASSWORD_MEMORY_COST_KIB = 8
    PASSWORD_PARALLELISM = 1
    # Test databases are made with create_all, not migrations; tests that check
    # /readyz's migration check turn it on.
    READYZ_CHECK_MIGRATIONS = False
    # Most tests run no worker; tests of the banner and /readyz turn this on.
    ALERT_WORKER_REQUIRED = False


class ProductionConfig(Config):
    """Behind nginx over HTTPS: secure cookies, HSTS, a strong secret or no start."""

    NAME = "production"
    SESSION_COOKIE_NAME = "__Host-tm_session"
    SESSION_COOKIE_SECURE = True
    HSTS_SECONDS = 365 * 24 * 60 * 60
    PROXY_FIX_X_FOR = 1
    PROXY_FIX_X_PROTO = 1
    PROXY_FIX_X_HOST = 1


CONFIGS = {cls.NAME: cls for cls in (DevelopmentConfig, TestingConfig, ProductionConfig)}


def config_from_environment() -> type[Config]:
    """Pick the config class named by TRADINGMONITOR_CONFIG (default: development)."""
    name = os.environ.get("TRADINGMONITOR_CONFIG", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(
            f"TRADINGMONITOR_CONFIG={name!r} is not one of {', '.join(CONFIGS)}"
        ) from None


def check_chart_max_points(value) -> None:
    """Refuse a chart point budget that is not a whole number from 100 to 100,000."""
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 100_000:
        raise RuntimeError(
            f"CHART_MAX_POINTS={value!r} must be a whole number from 100 to 100000."
        )


def check_secret_key(secret_key: str | None) -> None:
    """Refuse a missing, default or short secret key."""
    if not secret_key:
        raise RuntimeError("SECRET_KEY is not set; production refuses to start.")
    # The test suite's key is long enough but public: it is a default like "dev".
    if secret_key.lower() in WEAK_SECRET_KEYS or secret_key == TestingConfig.SECRET_KEY:
        raise RuntimeError("SECRET_KEY is a well-known default; production refuses.")
    if len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
        raise RuntimeError(
            f"SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} bytes; "
            "production refuses to start."
        )
