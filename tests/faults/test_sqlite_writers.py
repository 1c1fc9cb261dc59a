"""SQLite under several gunicorn workers: concurrent writers wait, a stuck lock is a 503."""

import sqlite3
import threading
import time

import pytest

from tests.faults.conftest import (
    Writers,
    batch,
    run_sqlite_service,
    unique_prefix,
    wait_until,
)

pytestmark = pytest.mark.faults

WORKERS = 4
WRITERS = 8
# The writers keep going at least this long and until each has this many batches answered.
RUN_SECONDS = 4
BATCHES_PER_WRITER = 5
# How long the other connection would hold its exclusive lock.
LOCK_SECONDS = 10


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """Production config with its own busy timeout: nothing here overrides it."""
    tmp = tmp_path_factory.mktemp("sqlite-writers")
    with run_sqlite_service(tmp, WORKERS) as service:
        yield service


def test_eight_concurrent_writers_on_four_workers_never_see_a_lock_and_lose_nothing(service):
    prefix = unique_prefix("W")
    start = time.monotonic()
    with Writers(service, prefix, threads=WRITERS, rows=5) as writers:
        per_asset = [f"{prefix}{n}" for n in range(WRITERS)]
        wait_until(
            lambda: (
                time.monotonic() - start >= RUN_SECONDS
                and all(
                    writers.count(lambda o, a=asset: o.rows[0]["asset"] == a) >= BATCHES_PER_WRITER
                    for asset in per_asset
                )
            ),
            seconds=120,
            what=f"every writer answered {BATCHES_PER_WRITER} times",
        )
        outcomes = writers.stop()

    failed = [o for o in outcomes if not o.ok]
    assert not failed, "\n".join(o.describe() for o in failed[:10])
    assert not [o for o in outcomes if "database is locked" in o.body]
    assert all(outcome.json()["inserted"] == 5 for outcome in outcomes)
    sent = set().union(*(o.keys for o in outcomes))
    assert len(sent) == 5 * len(outcomes)
    assert service.stored(prefix) == sent


def test_a_lock_held_past_the_busy_timeout_is_a_503_with_retry_after_then_the_batch_goes_in(
    service,
):
    prefix = unique_prefix("L")
    rows = batch(f"{prefix}0", 0, 3)
    answers = []
    holder = sqlite3.connect(service.database, isolation_level=None, timeout=60)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        poster = threading.Thread(target=lambda: answers.append(service.post(rows)))
        poster.start()
        # The lock is held LOCK_SECONDS at most: the answer has to come while it still is.
        poster.join(LOCK_SECONDS)
        answered_while_locked = not poster.is_alive()
    finally:
        holder.rollback()
        holder.close()
    poster.join(120)

    assert answered_while_locked, f"no answer while the lock was held for {LOCK_SECONDS}s"
    (locked,) = answers
    assert locked.status == 503, locked.describe()
    assert locked.json()["error"] == "service_unavailable"
    assert int(locked.headers["Retry-After"]) > 0
    assert "database is locked" not in locked.body
    assert service.stored(prefix) == set()

    retried = service.post(rows)

    assert retried.status == 200, retried.describe()
    assert retried.json()["inserted"] == 3
    assert service.stored(prefix) == locked.keys
