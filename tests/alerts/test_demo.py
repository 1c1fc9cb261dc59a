"""The demo's limit rules: sized to the seeded desk, one breached on the first run."""

from datetime import timedelta
from decimal import Decimal

import pytest

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.alerts.demo import round_to_two_digits
from app.alerts.models import Alert, AlertRule, AlertState, RuleKind
from app.db_types import utcnow
from app.extensions import db
from app.positions.limits import limit_rows


@pytest.mark.parametrize(
    ("value", "up", "expected"),
    [
        ("3.2336", True, "3.3"),
        ("3.2336", False, "3.2"),
        ("206335.6", True, "210000"),
        ("206335.6", False, "200000"),
        ("0.0123", True, "0.013"),
        ("45", True, "45"),
    ],
)
def test_demo_limits_are_rounded_to_two_significant_digits(value, up, expected):
    rounded = round_to_two_digits(Decimal(value), up=up)
    assert str(rounded) == expected


def test_first_run_adds_limits_one_of_them_breached(app):
    result = app.test_cli_runner().invoke(args=["seed", "first-run", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "Demo limit rules:" in result.output
    with app.app_context():
        # The demo's limits; the reconciled pair brings its own rule (tests/recon).
        rules = db.session.scalars(
            db.select(AlertRule).where(AlertRule.kind != RuleKind.RECON_BREAK)
        ).all()
        assert len(rules) == 4
        firing = db.session.scalars(db.select(Alert).where(Alert.state == AlertState.FIRING)).all()
        assert [alert.rule.name for alert in firing] == [
            rule.name for rule in rules if "Breached" in rule.description
        ]
        rows = limit_rows(utcnow(), timedelta(minutes=5))
        assert {row.rule.id for row in rows} == {rule.id for rule in rules}
        assert rows[0].breached and not any(row.breached for row in rows[1:])
        created = db.session.scalars(
            db.select(AuditEvent).where(AuditEvent.action == Action.RULE_CREATE)
        ).all()
        assert len(created) == 4 and {event.actor_name for event in created} == {"cli"}
