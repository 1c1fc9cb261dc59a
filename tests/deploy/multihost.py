"""Several hosts on one machine (deploy/multihost/): each host's gunicorn and alert
worker as its units run them, and clients streaming through nginx meanwhile."""

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests

from tests.conftest import CSRF_PATTERN, PASSWORD
from tests.deploy.conftest import (
    DEPLOY,
    FLASK,
    MULTIHOST,
    PROJECT_ROOT,
    production_env,
    start_gunicorn,
    wait_for_port,
)
from tests.faults.conftest import (
    BASE_TIME,
    REQUEST_TIMEOUT,
    STARTUP_SECONDS,
    Outcome,
    Service,
    socket_inodes,
    wait_until,
)

WRITERS, ASSETS = 3, 3
# Each asset's amount runs 1..PERIOD and round again.
PERIOD = 10
# A writer changes token before this many requests: each token's count stays under the
# API limit the shared count is checked against.
REQUESTS_PER_TOKEN = 40
# A batch cut off by a killed host is resent with the same rows for this long.
RESEND_SECONDS = 60
SHARED = {"SECRET_KEY", "DATABASE_URL", "TRADINGMONITOR_RATELIMIT_STORAGE_URI"}
PER_HOST = {"GUNICORN_BIND", "GUNICORN_WORKERS"}


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile reads them."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def worker_command() -> list[str]:
    """`flask alerts …` as deploy/tradingmonitor-alerts.service runs it."""
    unit = (DEPLOY / "tradingmonitor-alerts.service").read_text()
    command = re.search(r"^ExecStart=\S+/flask (.+)$", unit, re.MULTILINE)[1]
    return [*FLASK, *command.split()]


def tcp_connections(pid: int) -> set[tuple[int, int]]:
    """(local port, remote port) of the process's established IPv4 connections."""
    inodes = {inode[len("socket:[") : -1] for inode in socket_inodes(pid)}
    try:
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:  # gone meanwhile
        return set()
    found = set()
    for line in table:
        fields = line.split()
        if fields[3] == "01" and fields[9] in inodes:
            found.add((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)))
    return found


def group_members(group: int) -> set[int]:
    """Live processes of a process group, read from /proc."""
    members = set()
    for entry in Path("/proc").iterdir():
        try:
            state, _, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, NotADirectoryError, ValueError):
            continue
        if int(pgrp) == group and state != "Z":
            members.add(int(entry.name))
    return members


@dataclass
class Host:
    """One app host: its gunicorn and its alert worker, as its two units run them."""

    name: str
    port: int
    env: dict
    tmp: Path
    gunicorn: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_app(self) -> None:
        # A process group of its own: killing it takes master and workers, as a host dying.
        self.gunicorn = start_gunicorn(self.env, start_new_session=True)
        wait_for_port(self.port, self.gunicorn, seconds=STARTUP_SECONDS)

    def kill_app(self) -> None:
        os.killpg(self.gunicorn.pid, signal.SIGKILL)
        self.gunicorn.wait(30)
        wait_until(lambda: not group_members(self.gunicorn.pid), 30, f"{self.name} gone")

    def busy(self) -> bool:
        """Whether a gunicorn worker of this host holds a client, i.e. is mid-request."""
        workers = group_members(self.gunicorn.pid) - {self.gunicorn.pid}
        return any(local == self.port for pid in workers for local, _ in tcp_connections(pid))

    def start_worker(self) -> None:
        with open(self.tmp / "worker.log", "a") as log:
            self.worker = subprocess.Popen(
                worker_command(), cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=log
            )

    def access_log(self) -> str:
        return (self.tmp / "gunicorn-access.log").read_text()


def host_env(name: str, tmp: Path, places: dict) -> dict:
    """deploy/multihost's shared.env and host-<name>.env, with this machine's places."""
    shared, own = env_file(MULTIHOST / "shared.env"), env_file(MULTIHOST / f"host-{name}.env")
    assert shared.keys() - own.keys() >= SHARED, "shared.env holds what every host shares"
    assert own.keys() - shared.keys() >= PER_HOST, f"host-{name}.env holds its own settings"
    port = int(places["GUNICORN_BIND"].rsplit(":", 1)[1])
    return {**production_env(tmp, places["DATABASE_URL"], port), **shared, **own, **places}


@dataclass
class Stream:
    """Batches posted through nginx, each resent until acknowledged; pages; /readyz probes."""

    web: str
    prefix: str
    feeds: list[list[Service]]
    cookie: str
    hosts: list[Host]
    stop: threading.Event = field(default_factory=threading.Event)
    batches: list[list[Outcome]] = field(default_factory=list)
    pages: list[tuple[float, str, int | str]] = field(default_factory=list)
    probes: list[tuple[str, float, float, int | str, dict]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def acknowledged_since(self, moment: float) -> int:
        return sum(
            1 for tries in list(self.batches) if tries[-1].ok and tries[-1].started > moment
        )

    def seen_since(self, moment: float) -> int:
        """The fewest pages or probes of a host that started after `moment`."""
        pages = sum(1 for started, _, _ in list(self.pages) if started > moment)
        probes = Counter(name for name, started, *_ in list(self.probes) if started > moment)
        return min(pages, *(probes[host.name] for host in self.hosts))

    def write(self, writer: int) -> None:
        assets = [f"{self.prefix}{writer}-{j}" for j in range(ASSETS)]
        sent = 0
        for number in itertools.count():
            if self.stop.is_set():
                return
            rows = [
                {
                    "account": "main",
                    "asset": asset,
                    "timestamp": (BASE_TIME + timedelta(seconds=number)).isoformat(),
                    "amount": str(1 + (number + 3 * j) % PERIOD),
                }
                for j, asset in enumerate(assets)
            ]
            tries, first = [], time.monotonic()
            while not tries or (not tries[-1].ok and time.monotonic() - first < RESEND_SECONDS):
                tries.append(self.feeds[writer][sent // REQUESTS_PER_TOKEN].post(rows))
                sent += 1
                if not tries[-1].ok:
                    time.sleep(0.1)
            self.batches.append(tries)
            if not tries[-1].ok:
                return

    def read(self) -> None:
        for number in itertools.count():
            if self.stop.wait(0.05):
                return
            # An asset's history once it has one.
            stored = [f"/positions/{tries[-1].rows[0]['asset']}" for tries in self.batches[:1]]
            paths = ["/", "/alerts/", *stored]
            path, started = paths[number % len(paths)], time.monotonic()
            try:
                answer = requests.get(
                    self.web + path,
                    headers={"Cookie": self.cookie},
                    allow_redirects=False,
                    timeout=REQUEST_TIMEOUT,
                )
                seen = answer.status_code if 'data-testid="current-user"' in answer.text else -1
            except requests.RequestException as exc:
                seen = repr(exc)
            self.pages.append((started, path, seen))

    def probe(self) -> None:
        while not self.stop.wait(0.25):
            for host in self.hosts:
                started, body = time.monotonic(), {}
                try:
                    answer = requests.get(f"{host.url}/readyz", timeout=(2, 10))
                    status, body = answer.status_code, answer.json()
                except requests.ConnectionError:
                    status = "refused"
                except requests.RequestException as exc:
                    status = repr(exc)
                self.probes.append((host.name, started, time.monotonic(), status, body))

    def __enter__(self) -> "Stream":
        targets = [(self.write, (w,)) for w in range(WRITERS)] + [
            (self.read, ()),
            (self.probe, ()),
        ]
        self.threads = [threading.Thread(target=t, args=a, daemon=True) for t, a in targets]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(RESEND_SECONDS + sum(REQUEST_TIMEOUT) + 10)
        assert not any(t.is_alive() for t in self.threads), "a client never returned"


def log_in(web: str) -> str:
    """The session cookie of `ops`, logged in through nginx.

    It is Secure and this is plain HTTP on loopback: it is sent by hand.
    """
    page = requests.get(f"{web}/login", timeout=REQUEST_TIMEOUT)
    form = {
        "username": "ops",
        "password": PASSWORD,
        "csrf_token": CSRF_PATTERN.search(page.text)[1],
    }
    cookie = f"__Host-tm_session={page.cookies['__Host-tm_session']}"
    answer = requests.post(
        f"{web}/login",
        data=form,
        headers={"Cookie": cookie},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT,
    )
    assert answer.status_code == 302, answer.text[:500]
    return f"__Host-tm_session={answer.cookies['__Host-tm_session']}"
