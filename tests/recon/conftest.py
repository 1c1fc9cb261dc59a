from datetime import timedelta

import pytest

from app.db_types import utcnow
from tests.recon import helpers
from tests.recon.helpers import CLOCK


@pytest.fixture(autouse=True)
def fresh_now(monkeypatch):
    """Each test's NOW a moment before it starts: one taken at import goes stale in a
    long run, and what reads the real clock (the CLI, the pages) would see stale sides."""
    monkeypatch.setattr(helpers, "NOW", utcnow().replace(microsecond=0) - timedelta(minutes=5))


@pytest.fixture
def frozen_clock(monkeypatch):
    """Freeze the engine's clock; tests.recon.helpers.ingest moves it."""
    CLOCK["now"] = helpers.NOW
    monkeypatch.setattr("app.alerts.engine.utcnow", lambda: CLOCK["now"])
