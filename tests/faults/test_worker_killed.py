"""A gunicorn worker killed with SIGKILL mid-request loses nothing it acknowledged."""

import os
import signal
import time

import pytest

from tests.faults.conftest import (
    Writers,
    batch,
    run_sqlite_service,
    socket_inodes,
    unique_prefix,
    wait_until,
)

pytestmark = pytest.mark.faults

WORKERS = 2
# Batches big enough that a worker spends most of its time inside one.
ROWS = 300
KILL_ATTEMPTS = 3


@pytest.fixture
def service(tmp_path):
    with run_sqlite_service(tmp_path, WORKERS) as svc:
        yield svc


def busy_worker(service) -> int:
    """A worker holding a client connection, i.e. in the middle of a request."""
    listening = socket_inodes(service.master.pid)
    found = []

    def holds_a_client():
        found[:] = [pid for pid in service.worker_pids() if socket_inodes(pid) - listening]
        return bool(found)

    wait_until(holds_a_client, seconds=30, what="a worker in the middle of a request")
    return found[0]


def test_acknowledged_batches_survive_a_worker_killed_mid_request(service):
    prefix = unique_prefix("K")
    with Writers(service, prefix, threads=4, rows=ROWS) as writers:
        wait_until(lambda: writers.count(lambda o: o.ok) >= 4, 120, "4 batches stored")
        killed = []
        # A kill can land between two requests; kill again until one was cut short.
        while len(killed) < KILL_ATTEMPTS and not writers.count(lambda o: not o.ok):
            pid = busy_worker(service)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            wait_until(
                lambda p=pid: (
                    p not in service.worker_pids() and len(service.worker_pids()) == WORKERS
                ),
                seconds=60,
                what="gunicorn replaced the killed worker",
            )
            replaced = time.monotonic()
            wait_until(
                lambda r=replaced: writers.count(lambda o: o.ok and o.started > r) >= 4,
                seconds=120,
                what="4 batches stored after the replacement",
            )
        outcomes = writers.stop()

    failed = [o for o in outcomes if not o.ok]
    assert failed, f"none of {len(killed)} kills cut a request short"
    # Only the transport may fail: no application error, no 4xx.
    assert all(o.error or o.status >= 500 for o in failed), [o.describe() for o in failed]
    stored = service.stored(prefix)
    for outcome in outcomes:
        present = len(outcome.keys & stored)
        if outcome.ok:
            assert outcome.json()["inserted"] == ROWS
            assert present == ROWS, f"acknowledged batch has {present}/{ROWS} rows stored"
        else:
            assert present in (0, ROWS), f"failed batch half stored: {present}/{ROWS} rows"

    assert service.master.poll() is None
    after = service.post(batch(f"{prefix}after", 0, 2))
    assert after.status == 200, after.describe()
    assert len(service.stored(f"{prefix}after")) == 2
