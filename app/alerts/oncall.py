"""The worker's on-call duty: escalate unacknowledged alerts, flush due notification groups.

Called from every worker pass (and between passes), before delivery, so what it queues
goes out in the same round. Both halves are cheap when nothing is due: one indexed
read each (alert.escalation_next_at, notification_group.next_flush_at).
"""

from datetime import datetime

from app.alerts import escalation, group_flush
from app.db_types import utcnow


def on_call_pass(now: datetime | None = None) -> int:
    """Take every escalation step that is due, then flush every due group; the number of
    steps taken and group messages queued."""
    now = now or utcnow()
    # Escalating first: a step to a grouped channel joins its group in this same pass.
    steps = escalation.advance_due(now)
    messages = group_flush.flush_due(now)
    return steps + messages
