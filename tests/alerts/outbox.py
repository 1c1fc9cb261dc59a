"""The outbox seen from tests: a rule with one channel, its rows, a delivery pass."""

from decimal import Decimal

from app.alerts.delivery import deliver_due
from app.alerts.models import AlertRule, Channel, Notification, RuleKind
from app.db_types import utcnow
from app.extensions import db


def setup_rule(
    app,
    kind="webhook",
    target="http://127.0.0.1:9/none",
    rule_kind=RuleKind.POSITION_ABOVE,
    **rule,
):
    """ "BTC too big": above 10 BTC, critical, with a runbook; one channel "ops" of `kind`."""
    with app.app_context():
        channel = Channel(name="ops", kind=kind, target=target)
        settings = dict(
            name="BTC too big",
            kind=rule_kind,
            asset="BTC",
            threshold=Decimal("10"),
            severity="critical",
            runbook_url="https://wiki.example/btc",
        )
        settings.update(rule)
        db.session.add(AlertRule(channels=[channel], **settings))
        db.session.commit()


def notifications(app):
    with app.app_context():
        return (
            db.session.execute(db.select(Notification).order_by(Notification.id)).scalars().all()
        )


def deliver(app):
    with app.app_context():
        return deliver_due()


def make_due(app):
    """Skip the backoff wait: everything pending is due now."""
    with app.app_context():
        db.session.execute(db.update(Notification).values(next_attempt_at=utcnow()))
        db.session.commit()
