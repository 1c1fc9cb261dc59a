"""A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

BINARY = "/usr/bin/prometheus-alertmanager"
# One receiver that sends nowhere: the tests read what Alertmanager holds, not what it routes.
CONFIG = """\
route:
  receiver: nowhere
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nowhere
"""


def alertmanager_binary() -> str:
    """The binary, or skip (fail when REQUIRE_ALERTMANAGER=1)."""
    path = BINARY if os.access(BINARY, os.X_OK) else shutil.which("prometheus-alertmanager")
    if not path:
        message = "Alertmanager tests need prometheus-alertmanager (apt-get install it)"
        if os.environ.get("REQUIRE_ALERTMANAGER") == "1":
            pytest.fail(f"REQUIRE_ALERTMANAGER=1 but {message}")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Alertmanager:
    """Started with its own config and storage under `workdir`; stopped on exit."""

    def __init__(self, binary: str, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "alertmanager.yml"
        config.write_text(CONFIG)
        (workdir / "data").mkdir()
        self.log = workdir / "alertmanager.log"
        self.args = [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]
        self.process = None

    def __enter__(self):
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"Alertmanager did not get ready:\n{self.log.read_text()[-2000:]}")

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def alerts(self) -> list[dict]:
        """GET /api/v2/alerts: what Alertmanager holds and has not seen end."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as answer:
            return json.loads(answer.read())
