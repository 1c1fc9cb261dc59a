"""API rate limits under gunicorn's 4 workers: shared through Redis, or a loud warning."""

import json
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tests.deploy.conftest import (
    DEPLOY,
    FLASK,
    PROJECT_ROOT,
    free_port,
    production_env,
    stop_processes,
    wait_for_port,
)

LIMIT = 20


def flask(env: dict, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*FLASK, *args], cwd=PROJECT_ROOT, env=env, input=stdin, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_token(env: dict) -> str:
    """A read token of a new admin, made with the CLI as an admin would."""
    flask(
        env,
        "users",
        "create",
        "boss",
        "--role",
        "admin",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    return re.search(r"tm_\S+", flask(env, "tokens", "create", "boss", "r", "--scope", "read"))[0]


def serve(tmp_path, storage_uri: str):
    """gunicorn with deploy/gunicorn.conf.py and 4 workers; returns (url, env, process)."""
    port = free_port()
    env = {
        **production_env(tmp_path, f"sqlite:///{tmp_path / 'tm.sqlite3'}", port, workers=4),
        "TRADINGMONITOR_RATELIMIT_STORAGE_URI": storage_uri,
        # A key prefix of this run's own, so reruns and parallel runs never share counts.
        "TRADINGMONITOR_RATELIMIT_KEY_PREFIX": "tm-test-" + secrets.token_hex(6),
        "TRADINGMONITOR_API_RATE_LIMIT": f"{LIMIT}/hour",
    }
    flask(env, "db", "upgrade")
    # The app logs to stderr (journald under systemd); keep it to read the warning.
    with (tmp_path / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"), "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stderr=stderr,
        )
    wait_for_port(port, proc)
    return f"http://127.0.0.1:{port}", env, proc


def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_four_workers_share_one_count_through_redis(tmp_path, redis_url):
    url, env, proc = serve(tmp_path, redis_url)
    try:
        token = read_token(env)
        headers = {"Authorization": f"Bearer {token}"}
        # Eight at a time, each on its own connection: every worker takes some.
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: get(f"{url}/api/v1/assets", headers)[0], range(60)))

        assert statuses.count(200) == LIMIT
        assert statuses.count(429) == 60 - LIMIT
        body = get(f"{url}/readyz")[1]
        assert body["rate_limits"] == "shared (redis)"
        assert body["warnings"] == []
    finally:
        stop_processes(proc)
    log = (tmp_path / "stderr.log").read_text()
    assert "counted per process" not in log


def test_in_memory_counters_with_four_workers_are_warned_of_and_named_by_readyz(tmp_path):
    url, _, proc = serve(tmp_path, "memory://")
    try:
        body = get(f"{url}/readyz")[1]
    finally:
        stop_processes(proc)
    assert "counted per process" in body["rate_limits"]
    assert "4 workers" in body["rate_limits"]
    assert body["warnings"] == [body["rate_limits"]]
    log = (tmp_path / "stderr.log").read_text()
    assert re.search(r"WARNING.*API rate limits are counted per process.*4 workers", log), log


def test_an_unreachable_redis_is_named_and_the_api_still_answers(tmp_path):
    url, env, proc = serve(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    try:
        token = read_token(env)
        status, _ = get(f"{url}/api/v1/assets", {"Authorization": f"Bearer {token}"})
        body = get(f"{url}/readyz")[1]
    finally:
        stop_processes(proc)
    assert status == 200
    assert "redis storage unreachable" in body["rate_limits"]
