"""Production gunicorn on a real database, clients posting batches, and ways to break things."""

import json
import os
import re
import secrets
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import requests

from tests.deploy.conftest import (
    Deployment,
    free_port,
    production_env,
    start_gunicorn,
    stop_processes,
    wait_for_port,
)

PASSWORD = "correct horse battery staple"
# Generous waits for a slow machine; outcomes are still checked exactly.
STARTUP_SECONDS = 90
REQUEST_TIMEOUT = (10, 60)
BASE_TIME = datetime(2026, 3, 1, tzinfo=UTC)

StoredRows = Callable[[str], list[tuple[str, Decimal]]]


@dataclass
class Outcome:
    """One POST of a batch: what was sent and what came back (or how it failed)."""

    rows: list[dict]
    started: float
    finished: float = 0.0
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def keys(self) -> set[tuple[str, Decimal]]:
        return {(row["asset"], Decimal(row["amount"])) for row in self.rows}

    def json(self) -> dict:
        assert self.headers.get("Content-Type") == "application/json", self.describe()
        return json.loads(self.body)

    def describe(self) -> str:
        return f"status={self.status} error={self.error} body={self.body[:200]!r}"


def batch(asset: str, number: int, size: int) -> list[dict]:
    """Batch `number` of an asset: `size` rows, each with its own timestamp and amount."""
    first = number * size
    return [
        {
            "account": "main",
            "asset": asset,
            "timestamp": (BASE_TIME + timedelta(seconds=first + i)).isoformat(),
            "amount": str(first + i + 1),
        }
        for i in range(size)
    ]


@dataclass
class Service(Deployment):
    """gunicorn serving the app directly on loopback, with an ingest token."""

    master: subprocess.Popen | None = None
    token: str = ""
    stored_rows: StoredRows | None = None

    def post(self, rows: list[dict]) -> Outcome:
        outcome = Outcome(rows, started=time.monotonic())
        try:
            response = requests.post(
                f"{self.url}/api/v1/positions",
                json={"positions": rows},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=REQUEST_TIMEOUT,
            )
            outcome.status = response.status_code
            outcome.headers = dict(response.headers)
            outcome.body = response.text
        except requests.RequestException as exc:
            outcome.error = repr(exc)
        outcome.finished = time.monotonic()
        return outcome

    def stored(self, prefix: str) -> set[tuple[str, Decimal]]:
        """(asset, amount) of every stored row whose asset starts with prefix; no doubles."""
        rows = self.stored_rows(prefix)
        assert len(rows) == len(set(rows)), "a row is stored twice"
        return set(rows)

    def worker_pids(self) -> set[int]:
        """Live children of the gunicorn master, read from /proc."""
        return {pid for pid, state in _children(self.master.pid) if state != "Z"}


def _children(parent: int) -> list[tuple[int, str]]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name sits in parentheses and may hold spaces: split after it.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent:
            children.append((int(entry.name), state))
    return children


def socket_inodes(pid: int) -> set[str]:
    """The sockets a process holds open."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


def sqlite_reader(path: Path) -> StoredRows:
    """Read stored rows straight from the SQLite file, as another process would."""

    def stored_rows(prefix):
        with closing(sqlite3.connect(path, timeout=60)) as conn:
            found = conn.execute(
                "SELECT asset, amount FROM position WHERE asset LIKE ? || '%'", (prefix,)
            ).fetchall()
        return [(asset, Decimal(amount)) for asset, amount in found]

    return stored_rows


@contextmanager
def run_service(
    tmp: Path,
    database_url: str,
    workers: int,
    stored_rows: StoredRows,
    database: Path | None = None,
) -> Iterator[Service]:
    """Migrate, create an ingest token, start gunicorn; always stop it afterwards."""
    port = free_port()
    env = {
        **production_env(tmp, database_url, port, workers=workers),
        # Limits are another test's subject: here every request must reach the database.
        "TRADINGMONITOR_API_RATE_LIMIT": "1000000/minute",
    }
    service = Service(f"http://127.0.0.1:{port}", env, tmp, database, stored_rows=stored_rows)
    service.flask("db", "upgrade")
    service.flask(
        "users", "create", "feed", "--role", "admin", "--password-stdin", stdin=f"{PASSWORD}\n"
    )
    out = service.flask("tokens", "create", "feed", "ingest", "--scope", "ingest")
    service.token = re.search(r"tm_\S+", out).group(0)
    service.master = start_gunicorn(env)
    try:
        wait_for_port(port, service.master, seconds=STARTUP_SECONDS)
        urllib.request.urlopen(f"{service.url}/healthz", timeout=60).close()
        yield service
    finally:
        stop_processes(service.master)


def run_sqlite_service(tmp: Path, workers: int):
    """run_service on a fresh SQLite file in tmp."""
    database = tmp / "tradingmonitor.sqlite3"
    return run_service(tmp, f"sqlite:///{database}", workers, sqlite_reader(database), database)


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll until condition() holds; fail naming what never happened."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        time.sleep(0.05)


class Writers:
    """Threads that post batches with distinct keys, one asset each, until stopped."""

    def __init__(self, service: Service, prefix: str, threads: int, rows: int):
        self.service = service
        self.rows = rows
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._post_until_stopped, args=(f"{prefix}{n}",), daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> "Writers":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._halt()

    def stop(self) -> list[Outcome]:
        """Stop posting; every outcome, once each writer has had its last answer."""
        self._halt()
        assert not any(t.is_alive() for t in self._threads), "a writer never returned"
        return self.outcomes

    def _halt(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT[0] + REQUEST_TIMEOUT[1] + 10)

    @property
    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def count(self, predicate: Callable[[Outcome], bool]) -> int:
        return sum(1 for outcome in self.outcomes if predicate(outcome))

    def _post_until_stopped(self, asset: str) -> None:
        number = 0
        while not self._stop.is_set():
            outcome = self.service.post(batch(asset, number, self.rows))
            number += 1
            with self._lock:
                self._outcomes.append(outcome)
            if not outcome.ok:
                # A failing server is asked again at once, just not in a busy loop.
                self._stop.wait(0.05)


def unique_prefix(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}-"
