"""The worker's on-call duty: escalate unacknowledged alerts, flush due notification groups.

Called from every worker pass (and between passes), before delivery, so what it queues
goes out in the same round. Both halves are cheap when nothing is due: one indexed
read each (alert.escalation_next_at, notification_group.next_flush_at).
"""

from datetime import datetime

from sqlalchemy import select

from app.alerts import escalation, grouping
from app.alerts.models import Alert
from app.db_types import utcnow
from app.extensions import db


def on_call_pass(now: datetime | None = None) -> int:
    """Take every escalation step that is due, then flush every due group; the number of
    steps taken and group messages queued."""
    now = now or utcnow()
    # Escalating first: a step to a grouped channel joins its group in this same pass.
    steps = escalation.advance_due(now)
    messages = grouping.flush_due(now)
    return steps + messages


def next_due_at() -> datetime | None:
    """The earliest moment on-call work is due (a group flush or an escalation step)."""
    group = grouping.next_flush_at()
    step = db.session.execute(
        select(Alert.escalation_next_at)
        .where(Alert.escalation_next_at.is_not(None))
        .order_by(Alert.escalation_next_at)
        .limit(1)
    ).scalar()
    db.session.commit()
    moments = [moment for moment in (group, step) if moment is not None]
    return min(moments) if moments else None
