"""A real OpenID Connect provider for tests: oidc-provider-mock in its own process."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

STARTUP_SECONDS = 20
CLIENT_ID = "tradingmonitor-tests"
CLIENT_SECRET = "a-client-secret-for-tests"
ADMIN_GROUP = "desk-admins"
OPERATOR_GROUP = "desk-operators"
VIEWER_GROUP = "desk-viewers"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MockProvider:
    """The provider's address and the parts of its HTTP API the tests use."""

    url: str

    def set_user(self, sub: str, **claims) -> None:
        """Register (or replace) a user and the claims their ID token will carry."""
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def authorize(self, authorize_url: str, sub: str) -> str:
        """Sign `sub` in on the provider's authorization form; the callback URL it sends
        the browser back to (with code and state)."""
        assert authorize_url.startswith(self.url), authorize_url
        response = requests.post(
            authorize_url, data={"sub": sub}, allow_redirects=False, timeout=10
        )
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def settings(self, **overrides) -> dict:
        """App settings for signing in with this provider."""
        return {
            "OIDC_ISSUER": self.url,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_PROVIDER_NAME": "Mock Identity",
            "OIDC_ADMIN_GROUPS": ADMIN_GROUP,
            "OIDC_OPERATOR_GROUPS": OPERATOR_GROUP,
            "OIDC_VIEWER_GROUPS": VIEWER_GROUP,
            **overrides,
        }


def _cannot_start(message: str):
    # CI sets REQUIRE_BROWSER=1: there a provider that cannot start is a failure.
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


@contextmanager
def running_provider(log_dir: Path, *args: str):
    """Start `python -m oidc_provider_mock` on a free loopback port, wait until its
    discovery document answers, and stop it when the block ends."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"oidc-provider-{port}.log"
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
            )
        except OSError as exc:
            _cannot_start(f"oidc-provider-mock cannot start: {exc}")
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if process.poll() is not None:
                    _cannot_start(
                        f"oidc-provider-mock exited with {process.returncode}: "
                        f"{log_path.read_text(errors='replace')[-500:]}"
                    )
                try:
                    found = requests.get(f"{url}/.well-known/openid-configuration", timeout=2)
                    if found.status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    _cannot_start(f"oidc-provider-mock did not answer on {url} in time")
                time.sleep(0.1)
            yield MockProvider(url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def callback_path(callback_url: str) -> str:
    """The path and query of the provider's redirect back to us, for a test client."""
    parts = urlsplit(callback_url)
    return f"{parts.path}?{parts.query}"
