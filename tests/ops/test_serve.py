"""`flask serve` (what `make run` starts): the web server and the alert worker together."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.extensions import db
from config import DevelopmentConfig
from tests.conftest import PASSWORD, make_user
from tests.deploy.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def flask_env(database: Path) -> dict:
    env = {
        **os.environ,
        "TRADINGMONITOR_CONFIG": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "serve-test-" + "x" * 40,
    }
    for name in ("TRADINGMONITOR_PUBLIC_URL", "TEST_DATABASE_URL"):
        env.pop(name, None)
    return env


def readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def served(tmp_path):
    """`flask serve` on a spare port over a migrated development database."""
    database = tmp_path / "dev.sqlite3"
    env = flask_env(database)
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    subprocess.run([*flask, "db", "upgrade"], cwd=PROJECT_ROOT, env=env, check=True)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*flask, "serve", "--port", str(port), "--interval", "0.5"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, port, log
    finally:
        for pid in [*children(proc.pid), proc.pid]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_serve_runs_the_web_server_and_a_beating_alert_worker(served):
    proc, port, log = served
    status, body = wait_for(
        lambda: (answer := readyz(port))[1].get("alert_worker") == "ok" and answer,
        30,
        "the worker's first pass to show on /readyz",
    )
    assert status == 200
    assert body["alert_worker_last_pass"]
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children(proc.pid)]
    assert any(b"alerts\0run" in command for command in commands), commands
    assert f"Serving on http://127.0.0.1:{port}/" in log.read_text()


def test_ctrl_c_stops_both_processes(served):
    proc, port, _ = served
    wait_for(lambda: readyz(port)[0] == 200, 30, "the server")
    both = children(proc.pid)
    assert len(both) == 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    wait_for(lambda: not any(alive(pid) for pid in both), 10, "both children to stop")


def test_a_dead_worker_stops_the_server_and_says_so(served):
    proc, port, log = served
    wait_for(lambda: readyz(port)[0] == 200, 30, "the server")
    worker = next(
        pid
        for pid in children(proc.pid)
        if b"alerts\0run" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(worker, signal.SIGKILL)
    assert proc.wait(timeout=20) != 0
    assert re.search(r"alert worker exited with -9; stopping the other", log.read_text())
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_development_pages_show_the_banner_when_no_worker_ever_ran(tmp_path):
    from app import create_app

    app = create_app(
        {
            **{
                key: getattr(DevelopmentConfig, key)
                for key in dir(DevelopmentConfig)
                if key.isupper()
            },
            "READ_ENVIRONMENT": False,
            "READ_INSTANCE_CONFIG": False,
            "SECRET_KEY": "banner-test-" + "x" * 40,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
            "WTF_CSRF_ENABLED": False,
            "PASSWORD_TIME_COST": 1,
            "PASSWORD_MEMORY_COST_KIB": 8,
            "PASSWORD_PARALLELISM": 1,
        }
    )
    with app.app_context():
        db.create_all()
    make_user(app)
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": PASSWORD})
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="worker-banner"' in page
    assert "no alert worker has ever run" in page
    assert readyz_status(client) == 503


def readyz_status(client) -> int:
    return client.get("/readyz").status_code


def test_make_run_serves_with_the_worker_on_the_port_asked_for():
    plan = subprocess.run(
        ["make", "-n", "run", "PORT=5099"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "TRADINGMONITOR_PUBLIC_URL=http://127.0.0.1:5099 .venv/bin/flask serve "
        "--host 127.0.0.1 --port 5099" in plan
    )
