"""The overview's cost against the number of series it shows (SQLite, in-process).

    .venv/bin/python bench/overview_series.py                   # 20 against 1,000 and 10,000
    .venv/bin/python bench/overview_series.py --series 20,500   # other counts

Each count gets a fresh SQLite database made by the real migrations, a viewer, and
one snapshot per series (20 accounts, one asset for every 20 series) through
`ingest.record`. The overview is then asked for through Flask's test client with the
production settings: CPU milliseconds a request (the best of three rounds) and the
page's size, against the first count's, measured in the same run. No server and no
network: what the app itself pays for every series the page shows.
"""

import argparse
import secrets
import sys
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from _common import (
    TEST_CLIENT_BASE,
    app_env,
    bench_settings,
    cpu_per_request,
    log_in_test_client,
    migrate_database,
)

USERNAME, PASSWORD = "viewer", "overview series benchmark"
ACCOUNTS = 20


def build(database_url: str, secret_key: str, series: int):
    """A migrated database holding `series` series, and a client logged in as a viewer."""
    from app import create_app
    from app.auth.models import Role, User
    from app.auth.passwords import hash_password
    from app.db_types import utcnow
    from app.extensions import db
    from app.positions.ingest import Snapshot, record

    migrate_database(app_env(database_url, secret_key))
    app = create_app(bench_settings(database_url, secret_key))
    with app.app_context():
        db.session.add(
            User(username=USERNAME, password_hash=hash_password(PASSWORD), role=Role.VIEWER)
        )
        at = utcnow() - timedelta(seconds=30)
        record(
            Snapshot(
                account=f"account{i % ACCOUNTS:02d}",
                asset=f"ASSET{i // ACCOUNTS:05d}",
                timestamp=at,
                amount=Decimal("1.5"),
                price=Decimal("100.25"),
            )
            for i in range(series)
        )
        db.session.commit()
    client = app.test_client()
    log_in_test_client(client, USERNAME, PASSWORD)
    return client


def measure(client, requests: int) -> tuple[float, int]:
    """CPU ms of one GET / (best of three rounds of `requests`) and the page's bytes."""
    page = client.get("/", base_url=TEST_CLIENT_BASE)
    if page.status_code != 200:
        sys.exit(f"GET / answered {page.status_code}")
    return cpu_per_request(client, "/", requests, TEST_CLIENT_BASE), len(page.get_data())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="20,1000,10000", help="comma-separated counts")
    args = parser.parse_args()
    counts = [int(count) for count in args.series.split(",")]
    secret_key = secrets.token_hex(32)
    print("series      CPU ms/request  vs first      page bytes  vs first")
    reference = None
    with tempfile.TemporaryDirectory() as workdir:
        for count in counts:
            url = f"sqlite:///{Path(workdir) / f'overview-{count}.sqlite3'}"
            client = build(url, secret_key, count)
            ms, size = measure(client, max(1, min(50, 20_000 // count)))
            reference = reference or (ms, size)
            print(
                f"{count:>7,} {ms:>15.1f} {ms / reference[0]:>8.1f}x"
                f" {size:>15,} {size / reference[1]:>8.1f}x"
            )


if __name__ == "__main__":
    main()
