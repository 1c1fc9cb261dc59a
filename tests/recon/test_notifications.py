"""A break notifies its reconciliation's channels, and a silence mutes it like any alert."""

from datetime import timedelta

import pytest

from app.alerts.models import Channel, Notification, NotificationKind, Silence
from app.extensions import db
from tests.recon.helpers import at, book, define, ingest, venue

pytestmark = pytest.mark.usefixtures("frozen_clock")


def with_channel(app, **settings) -> None:
    with app.app_context():
        channel = Channel(name="desk", kind="webhook", target="http://127.0.0.1:9/hook")
        db.session.add(channel)
        db.session.commit()
        channel_id = channel.id
    ingest(app, book(amount="5"), venue(amount="5"))
    define(app, channel_ids=(channel_id,), **settings)


def queued(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [
            (n.kind, n.payload["commonLabels"]["asset"], n.payload["commonAnnotations"]["kind"])
            for n in db.session.execute(
                db.select(Notification).order_by(Notification.id)
            ).scalars()
        ]


def test_a_break_queues_firing_then_resolved_for_the_reconciliations_channel(app):
    with_channel(app)
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=10))
    assert queued(app) == [(NotificationKind.FIRING, "XBT", "recon_break")]
    ingest(app, book(amount="7.5", seconds=20), venue(amount="7.5", seconds=20))
    assert [kind for kind, _, _ in queued(app)] == [
        NotificationKind.FIRING,
        NotificationKind.RESOLVED,
    ]


def test_a_silenced_break_fires_but_notifies_nobody(app):
    with_channel(app)
    with app.app_context():
        db.session.add(
            Silence(
                asset="XBT",
                starts_at=at(-60),
                ends_at=at(0) + timedelta(hours=1),
                comment="venue maintenance",
            )
        )
        db.session.commit()
    ingest(app, book(amount="5", seconds=10), venue(amount="7.5", seconds=10))
    assert queued(app) == []
