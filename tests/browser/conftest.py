"""Browser fixtures: a live server on a real socket, and Debian's Chromium via Playwright.

Playwright never downloads a browser here (`playwright install` cannot reach the net):
it drives the system Chromium through `executable_path`.

Screenshots pass caret="initial": to hide the text caret Playwright would insert a
<style> element, which our CSP refuses, and the tests fail on CSP violations.
"""

import math
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Playwright's own timeouts (ms): generous for a cold Chromium, short enough to fail fast.
TIMEOUT_MS = 15_000

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, or skip (fail when REQUIRE_BROWSER=1)."""
    path = DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        message = "browser tests need Debian's chromium (apt-get install chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    return path


# The browser's timezone is pinned: pages follow it until a user picks one, and
# the host's own zone must not change what a test sees.
DEFAULT_CONTEXT = {"viewport": {"width": 1280, "height": 800}, "timezone_id": "UTC"}


@pytest.fixture
def open_page(chromium_path):
    """Open pages in fresh contexts, each with its own options (viewport, color_scheme, …)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        contexts = []

        def open_(**options):
            context = browser.new_context(**{**DEFAULT_CONTEXT, **options})
            context.set_default_timeout(TIMEOUT_MS)
            contexts.append(context)
            return context.new_page()

        try:
            yield open_
        finally:
            for context in contexts:
                context.close()
            browser.close()


@pytest.fixture
def browser_page(open_page):
    """A fresh Chromium page (own context: no cookies shared between tests)."""
    return open_page()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/browser/ under the project root (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# A whole desk for the tests that visit every page (layout, accessibility): every
# page has rows, two alerts fire (one critical), one resolved, channels, a silence,
# tokens and audit entries written the way the CLI writes them.
DESK_ADMIN = "ada"
DESK_PRICES = {"BTC": 64000, "ETH": 3100, "SOL": 145}


@dataclass
class Desk:
    url: str
    app: object
    ids: dict  # ids the page paths need: alert, rule, user
    storage_state: dict  # cookies of the admin's logged-in session

    def has_endpoint(self, endpoint: str) -> bool:
        return endpoint in self.app.view_functions


def seed_desk(app) -> dict:
    """Fill `app` with a desk's worth of data; the ids the pages need."""
    from app.alerts.models import Alert, AlertRule
    from app.auth.models import Role
    from app.db_types import utcnow
    from app.extensions import db
    from tests.conftest import make_user
    from tests.positions.helpers import snap, store

    admin_id = make_user(app, DESK_ADMIN, role=Role.ADMIN)
    operator_id = make_user(app, "olivia.operator-with-a-long-name", role=Role.OPERATOR)
    runner = app.test_cli_runner()

    def cli(*args):
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, (args, result.output)

    cli(
        "alerts",
        "add-channel",
        "desk-webhook",
        "--kind",
        "webhook",
        "--target",
        "https://hooks.example.com/services/T000/B000/a-long-webhook-path-that-does-not-wrap",
    )
    cli("alerts", "add-channel", "risk-mail", "--kind", "email", "--target", "risk@example.com")
    cli(
        "alerts",
        "add-rule",
        "BTC position over 4",
        "--kind",
        "position_above",
        "--threshold",
        "4",
        "--clear-threshold",
        "3.5",
        "--asset",
        "BTC",
        "--severity",
        "critical",
        "--channel",
        "desk-webhook",
        "--channel",
        "risk-mail",
    )
    cli(
        "alerts",
        "add-rule",
        "ETH notional over 150k",
        "--kind",
        "notional_above",
        "--threshold",
        "150000",
        "--asset",
        "ETH",
        "--severity",
        "warning",
    )
    cli(
        "alerts",
        "add-rule",
        "Gross exposure over 1M",
        "--kind",
        "gross_exposure_above",
        "--threshold",
        "1000000",
        "--severity",
        "info",
    )
    cli(
        "alerts",
        "add-rule",
        "Feed silent 10 min",
        "--kind",
        "stale_feed",
        "--threshold",
        "600",
        "--severity",
        "warning",
    )
    cli(
        "alerts",
        "add-silence",
        "--asset",
        "SOL",
        "--hours",
        "4",
        "--comment",
        "Rebalancing SOL between accounts this afternoon",
    )
    cli("tokens", "create", DESK_ADMIN, "trading-system", "--scope", "ingest", "--scope", "read")

    now = utcnow().replace(second=0, microsecond=0)
    history = [
        snap(
            account=account,
            asset=asset,
            at=now - timedelta(minutes=30 * step),
            amount=f"{base * (1 + 0.3 * math.sin(step / (4 if account == 'main' else 7))):.4f}",
            price=str(DESK_PRICES[asset] + step * 3),
        )
        for asset, base in (("BTC", 2), ("ETH", 30), ("SOL", -400))
        for account in ("main", "hedge")
        for step in range(48, 0, -1)
    ]
    history.append(snap(account="main", asset="DOGE", at=now - timedelta(hours=1), amount="1e4"))
    store(app, history)
    # BTC on hedge breaks the limit and comes back (a resolved alert in the history);
    # BTC on main and ETH's notional stay above theirs (two firing alerts).
    store(
        app,
        [
            snap(
                account="hedge",
                asset="BTC",
                at=now - timedelta(minutes=4),
                amount="4.25",
                price="64010",
            )
        ],
    )
    store(
        app,
        [
            snap(
                account="hedge",
                asset="BTC",
                at=now - timedelta(minutes=3),
                amount="2.125",
                price="64020",
            )
        ],
    )
    # Every feed but DOGE's is fresh; DOGE went quiet an hour ago (stale, and its rule fires).
    store(
        app,
        [
            snap(account="main", asset="BTC", at=now, amount="4.5", price="64200.5"),
            snap(account="main", asset="ETH", at=now, amount="55.123456", price="3105.25"),
            snap(account="hedge", asset="ETH", at=now, amount="31.5", price="3105.25"),
            snap(account="main", asset="SOL", at=now, amount="-431.25", price="148.125"),
            snap(account="hedge", asset="SOL", at=now, amount="-402.5", price="148.125"),
        ],
    )
    # A reconciliation of main against hedge: BTC apart (a break), SOL within 10 %
    # (matched), DOGE only on main (unknown).
    with app.app_context():
        from decimal import Decimal

        from app.recon.define import AssetSpec, ReconSpec, save_reconciliation

        recon = save_reconciliation(
            ReconSpec(
                name="main against hedge",
                left_account="main",
                right_account="hedge",
                assets=(
                    AssetSpec("BTC", abs_tolerance=Decimal("0.01")),
                    AssetSpec("SOL", rel_tolerance_percent=Decimal("10")),
                    AssetSpec("DOGE"),
                ),
            ),
            actor="cli",
        )
        db.session.commit()
        recon_id = recon.id
    with app.app_context():
        alert_id = db.session.execute(
            db.select(Alert.id)
            .join(AlertRule)
            .where(AlertRule.name == "BTC position over 4", Alert.account == "main")
        ).scalar_one()
        rule_id = db.session.execute(
            db.select(AlertRule.id).where(AlertRule.name == "BTC position over 4")
        ).scalar_one()
    return {
        "alert": alert_id,
        "rule": rule_id,
        "admin": admin_id,
        "operator": operator_id,
        "recon": recon_id,
    }


def session_cookies(url: str, username: str) -> dict:
    """Log in through the login form; the session as a Playwright storage state."""
    import re

    import requests

    from tests.conftest import PASSWORD

    with requests.Session() as http:
        form = http.get(f"{url}/login", timeout=10).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
        response = http.post(
            f"{url}/login",
            data={"csrf_token": token.group(1), "username": username, "password": PASSWORD},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text
        cookies = [
            {"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": c.path or "/"}
            for c in http.cookies
        ]
    return {"cookies": cookies, "origins": []}


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """One live server per test module with a desk in it, and its admin's session."""
    from app.extensions import db
    from tests.conftest import build_app, serve

    path = tmp_path_factory.mktemp("desk") / "desk.sqlite3"
    app = build_app(f"sqlite:///{path}")
    with app.app_context():
        db.create_all()
    ids = seed_desk(app)
    with serve(app) as server:
        yield Desk(server.url, app, ids, session_cookies(server.url, DESK_ADMIN))
    with app.app_context():
        db.engine.dispose()
