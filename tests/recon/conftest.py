import pytest

from tests.recon.helpers import CLOCK, NOW


@pytest.fixture
def frozen_clock(monkeypatch):
    """Freeze the engine's clock; tests.recon.helpers.ingest moves it."""
    CLOCK["now"] = NOW
    monkeypatch.setattr("app.alerts.engine.utcnow", lambda: CLOCK["now"])
