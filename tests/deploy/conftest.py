"""Real gunicorn (deploy/gunicorn.conf.py) behind real nginx (deploy/nginx.conf)."""

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

# Debian's Chromium, found (or required) the same way as for the browser tests.
from tests.browser.conftest import chromium_path  # noqa: F401

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT_ROOT / "deploy"
MULTIHOST = DEPLOY / "multihost"
FLASK = [sys.executable, "-m", "flask", "--app", "app"]
METRICS_TOKEN = secrets.token_hex(16)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {seconds}s")


def production_env(tmp: Path, database_url: str, app_port: int, workers: int = 2) -> dict:
    """Environment of a production gunicorn on loopback, its logs and metrics in tmp."""
    env = {
        **os.environ,
        "TRADINGMONITOR_CONFIG": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "GUNICORN_BIND": f"127.0.0.1:{app_port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_ACCESS_LOG": str(tmp / "gunicorn-access.log"),
        "GUNICORN_ERROR_LOG": str(tmp / "gunicorn-error.log"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    env.pop("TEST_DATABASE_URL", None)
    return env


def start_gunicorn(env: dict, **popen) -> subprocess.Popen:
    """gunicorn as deployed: deploy/gunicorn.conf.py, settings from env."""
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"), "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        **popen,
    )


def stop_processes(*procs: subprocess.Popen) -> None:
    """SIGTERM all, wait for each (gunicorn drains its workers), SIGKILL stragglers."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def nginx_path() -> str:
    """Debian's nginx, or skip (fail when REQUIRE_NGINX=1)."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if not path:
        message = "deployment tests need nginx (apt-get install nginx)"
        if os.environ.get("REQUIRE_NGINX") == "1":
            pytest.fail(f"REQUIRE_NGINX=1 but {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def redis_url():
    """A reachable Redis, or skip (fail when REQUIRE_REDIS=1)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"shared rate-limit tests need Redis at {REDIS_URL} ({exc})"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"REQUIRE_REDIS=1 but {message}")
        pytest.skip(message)
    return REDIS_URL


def render_site(upstream_port: int, listen_port: int, server_name: str) -> str:
    """deploy/nginx.conf with this machine's ports, paths and name: nothing else changes."""
    site = (DEPLOY / "nginx.conf").read_text()
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80 default_server;": f"listen 127.0.0.1:{listen_port} default_server;",
        "listen 80;": f"listen 127.0.0.1:{listen_port};",
        "server_name tradingmonitor.example.com;": f"server_name {server_name};",
        "root /srv/tradingmonitor/app;": f"root {PROJECT_ROOT / 'app'};",
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx.conf no longer contains {old!r}"
        site = site.replace(old, new)
    return site


def render_multihost_site(upstream_ports: list[int], listen_port: int, server_name: str) -> str:
    """render_site with deploy/multihost/nginx-upstream.conf's block, its hosts on loopback."""
    upstream = (MULTIHOST / "nginx-upstream.conf").read_text()
    hosts = re.findall(r"^\s*server (\S+) ", upstream, flags=re.MULTILINE)
    assert len(hosts) == len(upstream_ports), f"nginx-upstream.conf lists {hosts}"
    for host, port in zip(hosts, upstream_ports, strict=True):
        upstream = upstream.replace(f"server {host} ", f"server 127.0.0.1:{port} ")
    block = re.compile(r"^upstream tradingmonitor \{.*?^\}\n", re.MULTILINE | re.DOTALL)
    [new_block] = block.findall(upstream)
    site = render_site(upstream_ports[0], listen_port, server_name)
    assert len(block.findall(site)) == 1, "deploy/nginx.conf has no one upstream block"
    return block.sub(lambda _: new_block, site)


def main_config(tmp: Path, site: Path) -> str:
    """The http{} wrapper that Debian's /etc/nginx/nginx.conf would provide."""
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
worker_processes 1;
daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "nginx-error.log"} warn;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {tmp / "nginx-access.log"};
{temp}
    include {site};
}}
"""


def start_nginx(nginx_path: str, tmp: Path, site: str, env: dict) -> subprocess.Popen:
    """nginx in the foreground with this site, its files in tmp; checked with -t first."""
    (tmp / "site.conf").write_text(site)
    nginx_conf = tmp / "nginx.conf"
    nginx_conf.write_text(main_config(tmp, tmp / "site.conf"))
    check = subprocess.run(
        [nginx_path, "-t", "-c", str(nginx_conf), "-p", str(tmp)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    return subprocess.Popen([nginx_path, "-c", str(nginx_conf), "-p", str(tmp)], env=env)


@dataclass
class Deployment:
    url: str
    env: dict
    tmp: Path
    database: Path

    def flask(self, *args: str, stdin: str | None = None) -> str:
        """Run a `flask` command against the deployment's database."""
        done = subprocess.run(
            [*FLASK, *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def gunicorn_access_log(self) -> str:
        """gunicorn's access log, once every request sent before this call is in it."""
        # gunicorn writes the line after answering: send a marker and wait for it.
        marker = secrets.token_hex(8)
        urllib.request.urlopen(f"{self.url}/healthz?m={marker}", timeout=10).close()
        log = self.tmp / "gunicorn-access.log"
        deadline = time.monotonic() + 10
        while marker not in (text := log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return text


@pytest.fixture(scope="module")
def deployment(nginx_path, tmp_path_factory):
    """Migrated SQLite database, gunicorn on loopback, nginx in front; torn down after."""
    tmp = tmp_path_factory.mktemp("deploy")
    tmp.chmod(0o755)
    database = tmp / "tradingmonitor.sqlite3"
    app_port, web_port = free_port(), free_port()
    env = {
        **production_env(tmp, f"sqlite:///{database}", app_port),
        "TRADINGMONITOR_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "TRADINGMONITOR_METRICS_TOKEN": METRICS_TOKEN,
        # As deploy/tradingmonitor.env.example ships it: rate limits counted in Redis
        # (this run's own key prefix), so the deployment warns of nothing.
        "TRADINGMONITOR_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
        "TRADINGMONITOR_RATELIMIT_KEY_PREFIX": "tm-deploy-" + secrets.token_hex(6),
    }
    deployment = Deployment(f"http://127.0.0.1:{web_port}", env, tmp, database)
    deployment.flask("db", "upgrade")

    gunicorn = start_gunicorn(env)
    nginx = start_nginx(nginx_path, tmp, render_site(app_port, web_port, "127.0.0.1"), env)
    # The alert worker, as its systemd unit runs it.
    worker = subprocess.Popen(
        [*FLASK, "alerts", "run", "--interval", "1"], cwd=PROJECT_ROOT, env=env
    )
    try:
        wait_for_port(app_port, gunicorn)
        wait_for_port(web_port, nginx)
        urllib.request.urlopen(f"{deployment.url}/healthz", timeout=10).close()
        yield deployment
    finally:
        stop_processes(worker, nginx, gunicorn)
