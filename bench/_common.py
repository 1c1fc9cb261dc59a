"""What the benchmarks in bench/ share: settings, migrations, scratch databases, signals.

Importing it puts the project root on sys.path, so a benchmark run as
`.venv/bin/python bench/<name>.py` can import the app, `config` and `wsgi`.
"""

import contextlib
import io
import os
import re
import secrets
import shutil
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# SQLAlchemy's storage format for DateTime on SQLite: naive UTC with microseconds.
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# CPUs kept busy by other processes during a run above which a report warns.
OTHER_LOAD_WARNING = 0.15
# The benchmarks' assets: starting price, and the decimals each is quoted with (every
# value is sent as an exact string).
ASSET_PRICES = {
    "BTC": (62_000, 2),
    "ETH": (3_100, 2),
    "SOL": (150, 3),
    "ADA": (0.45, 5),
    "AVAX": (35, 3),
    "DOGE": (0.12, 6),
    "DOT": (7, 4),
    "LINK": (14, 4),
    "LTC": (80, 3),
    "XRP": (0.55, 5),
}
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE_ATTR = re.compile(r'value="([^"]*)"')
# Flask's test client as a browser behind the TLS proxy: the production cookie is
# Secure and __Host-.
TEST_CLIENT_BASE = "https://localhost"


class BenchError(RuntimeError):
    pass


def iso_z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def percentile_ms(samples: list[float], q: float) -> float:
    """The sample (seconds) at rank int(q * n) of the sorted samples, in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def remove_workdir(workdir: Path, keep: bool) -> None:
    if keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _terminate(signum, _frame):
    print(f"stopped by signal {signum}", file=sys.stderr)
    raise SystemExit(128 + signum)


def handle_signals() -> None:
    """Leave through the benchmark's `finally` (servers stopped, scratch data removed)."""
    # SIGINT too: started in the background, a process gets it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


# ------------------------------------------------------------------- app and schema


def app_env(database_url: str, secret_key: str) -> dict:
    """The server's environment: production config on our database, no rate limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADINGMONITOR_")}
    env.update(
        TRADINGMONITOR_CONFIG="production",
        # JSON: the app reads TRADINGMONITOR_* values as JSON.
        TRADINGMONITOR_API_RATE_LIMIT='"1000000/minute"',
        SECRET_KEY=secret_key,
        DATABASE_URL=database_url,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@contextlib.contextmanager
def environment(env: dict):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_app(env: dict):
    """The app as the server builds it from the environment `env`."""
    from app import create_app

    with environment(env):
        return create_app()


def bench_settings(database_url: str, secret_key: str) -> dict:
    """Production settings on our database, ignoring the environment and instance file."""
    from config import ProductionConfig

    settings = {k: getattr(ProductionConfig, k) for k in dir(ProductionConfig) if k.isupper()}
    settings.update(
        SECRET_KEY=secret_key,
        SQLALCHEMY_DATABASE_URI=database_url,
        READ_ENVIRONMENT=False,
        READ_INSTANCE_CONFIG=False,
    )
    return settings


def csrf_value(body: str) -> str:
    """The csrf_token input's value in a page's HTML."""
    tag = CSRF_INPUT.search(body)
    value = VALUE_ATTR.search(tag.group(0)) if tag else None
    if value is None:
        raise BenchError("no csrf_token input on /login")
    return value.group(1)


def log_in_test_client(client, username: str, password: str) -> None:
    """Log a Flask test client in through the real form, as a browser over HTTPS."""
    base = TEST_CLIENT_BASE
    token = csrf_value(client.get("/login", base_url=base).get_data(as_text=True))
    response = client.post(
        "/login",
        base_url=base,
        data={"username": username, "password": password, "csrf_token": token},
        headers={"Referer": f"{base}/login"},  # CSRF's strict referrer check on HTTPS
    )
    if response.status_code != 302:
        raise BenchError(f"POST /login answered {response.status_code}, not a redirect")


def cpu_per_request(client, path: str, requests: int, base_url: str) -> float:
    """CPU milliseconds of one GET, the best of three rounds (other processes add noise)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(requests):
            client.get(path, base_url=base_url)
        best = min(best, (time.process_time() - started) / requests * 1000)
    return best


def upgrade_quietly() -> None:
    """Run the migrations in the current app context."""
    from flask_migrate import upgrade

    # Alembic logs every step to stderr; show it only when the upgrade fails.
    alembic_log = io.StringIO()
    try:
        with contextlib.redirect_stderr(alembic_log):
            upgrade(directory=str(ROOT / "migrations"))
    except BaseException:
        sys.stderr.write(alembic_log.getvalue())
        raise


def migrate_database(env: dict) -> None:
    """Create the schema of the database `env` points at with the real migrations."""
    from app.extensions import db

    app = make_app(env)
    with app.app_context():
        try:
            upgrade_quietly()
        finally:
            db.session.remove()
            db.engine.dispose()


def add_ingest_user(username: str, token_name: str) -> str:
    """Add an admin (only admins may ingest) with an `ingest` token, uncommitted; its secret."""
    from app.auth.models import Role, Scope, User
    from app.auth.passwords import hash_password
    from app.auth.tokens import create_token
    from app.extensions import db

    user = User(
        username=username,
        password_hash=hash_password(secrets.token_urlsafe(24)),
        role=Role.ADMIN,
        active=True,  # the column default comes at flush; create_token checks it before
    )
    db.session.add(user)
    _, secret = create_token(user, token_name, [Scope.INGEST])
    return secret


# ------------------------------------------------------------ scratch PostgreSQL


def postgres_urls(url: str, name: str) -> tuple[str, str]:
    """(SQLAlchemy URL for the app, libpq URI for psycopg) of database `name`."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(database=name)
    return (
        parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
        parsed.set(drivername="postgresql").render_as_string(hide_password=False),
    )


def postgres_database(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or "postgres"


def add_postgres_url(parser, scratch: str) -> None:
    """The --postgres-url option, from which the benchmark creates `scratch`."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL"),
        help=f"a PostgreSQL database on loopback to create {scratch} from "
        "(default: $BENCH_POSTGRES_URL; PostgreSQL is skipped without one)",
    )


def check_loopback(parser, url: str | None) -> None:
    """Refuse a --postgres-url off loopback: scratch databases are created and dropped there."""
    from sqlalchemy.engine import make_url

    if not url:
        return
    host = make_url(url).host or ""
    if host not in LOOPBACK:
        parser.error(f"--postgres-url must point at loopback, not {host or 'a socket'!r}")


class ScratchDatabases:
    """PostgreSQL databases created through an admin URL and dropped with FORCE."""

    def __init__(self, admin_url: str):
        self.admin_conninfo = postgres_urls(admin_url, postgres_database(admin_url))[1]
        self.names: list[str] = []

    def _execute(self, statement) -> None:
        import psycopg

        with psycopg.connect(self.admin_conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def check(self) -> str:
        """Fail early, before the SQLite run, when the server cannot be reached."""
        import psycopg

        try:
            with psycopg.connect(self.admin_conninfo, connect_timeout=10) as conn:
                return conn.execute("SHOW server_version").fetchone()[0]
        except psycopg.Error as exc:
            raise BenchError(f"PostgreSQL: {exc}") from None

    def create(self, name: str) -> None:
        from psycopg import sql

        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)

    def drop_all(self) -> None:
        from psycopg import sql

        for name in reversed(self.names):
            try:
                self._execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            except Exception as exc:  # cleanup goes on; say what is left behind
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
        self.names.clear()
