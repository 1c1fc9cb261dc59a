"""A PostgreSQL server of the test's own, so it can be stopped without disturbing anyone."""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.deploy.conftest import free_port

BINARIES = "/usr/lib/postgresql/*/bin"
# pg_ctl waits this long for a start or stop on a slow machine.
PG_CTL_WAIT_SECONDS = 90


def postgres_binaries() -> Path:
    """Debian's initdb and pg_ctl, or skip (fail when REQUIRE_POSTGRES=1)."""
    found = sorted(
        (Path(d) for d in glob.glob(BINARIES) if (Path(d) / "pg_ctl").exists()),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    problem = None
    if not found:
        problem = f"restart tests need PostgreSQL's server binaries in {BINARIES}"
    elif os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            problem = "as root, PostgreSQL must run as the 'postgres' user, which is missing"
    if problem:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    return found[-1]


class PrivatePostgres:
    """initdb into a temporary directory; start, stop and restart with pg_ctl."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="tradingmonitor-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        # The server refuses to run as root: hand it the directory and run as postgres.
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> str:
        return str(self.root / "server.log")

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.binaries / tool), *args],
            capture_output=True,
            text=True,
            timeout=PG_CTL_WAIT_SECONDS + 30,
        )
        if done.returncode != 0:
            server_log = Path(self.log).read_text()[-2000:] if Path(self.log).exists() else ""
            raise AssertionError(f"{tool} {args}: {done.stdout}{done.stderr}\n{server_log}")

    def _pg_ctl(self, action: str, *args: str) -> None:
        wait = ["-w", "-t", str(PG_CTL_WAIT_SECONDS)]
        self._run("pg_ctl", action, "-D", str(self.data), *wait, *args)

    def initdb(self) -> None:
        options = ["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C"]
        self._run("initdb", "-D", str(self.data), *options)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                # Durability against power loss is not under test; restarts flush anyway.
                "fsync = off\n"
            )

    def start(self) -> None:
        """Start and return once the server accepts connections."""
        self._pg_ctl("start", "-l", self.log)

    def start_in_background(self) -> None:
        """Start and return at once; accepts_connections() tells when it is up."""
        self._run("pg_ctl", "start", "-D", str(self.data), "-W", "-l", self.log)

    def accepts_connections(self) -> bool:
        try:
            self._connect().close()
        except psycopg.OperationalError:
            return False
        return True

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=5
        )

    def stop(self) -> None:
        """Fast shutdown: sessions are ended, in-flight transactions rolled back."""
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-l", self.log)

    def stored_rows(self, prefix: str) -> list[tuple[str, Decimal]]:
        with self._connect() as conn:
            found = conn.execute(
                "SELECT asset, amount FROM position WHERE asset LIKE %s || '%%'", (prefix,)
            ).fetchall()
        return [(asset, Decimal(str(amount))) for asset, amount in found]

    def destroy(self) -> None:
        """Stop the server whatever state it is in, and remove its files."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                self._pg_ctl("stop", "-m", "immediate")
            except (AssertionError, subprocess.TimeoutExpired):
                self._kill_postmaster(pid_file)
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self, pid_file: Path) -> None:
        """pg_ctl could not stop it: SIGKILL the postmaster of this data directory only."""
        pid = int(pid_file.read_text().split()[0])
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.data).encode() in command:
            os.kill(pid, signal.SIGKILL)
