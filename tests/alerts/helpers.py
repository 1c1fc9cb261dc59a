"""Alert rules and firing alerts for tests, and waiting on what a worker does."""

import time
from decimal import Decimal

from app.alerts.models import Alert, AlertRule, RuleKind
from app.db_types import utcnow
from app.extensions import db
from tests.positions.helpers import snap, store


def add_rule(app, name, threshold, **fields) -> None:
    """Save a rule; unless told otherwise it fires when the BTC position is above `threshold`."""
    fields = {"kind": RuleKind.POSITION_ABOVE, "asset": "BTC", **fields}
    with app.app_context():
        db.session.add(AlertRule(name=name, threshold=Decimal(threshold), **fields))
        db.session.commit()


def firing_btc_alert(app, *other_snapshots) -> int:
    """The id of the one alert firing on main/BTC: "BTC too big" (above 10) saw 12.5."""
    add_rule(app, "BTC too big", "10", severity="critical")
    store(app, [snap(at=utcnow(), amount="12.5"), *other_snapshots])
    with app.app_context():
        return db.session.execute(db.select(Alert.id)).scalar_one()


def wait_for(condition, timeout=60) -> bool:
    """Poll until condition() holds; whether it did within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
