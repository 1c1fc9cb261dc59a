"""Hand-off to Alertmanager: our alerts as its API v2 alerts, re-sent while they fire.

A channel of kind "alertmanager" holds the Alertmanager's base URL (the one its web UI
answers at); messages go to <base>/api/v2/alerts. Firing and resolved messages travel
through the outbox like every other channel's (ordered, retried, idempotency key in a
header). Alertmanager forgets an alert that is not re-sent before its endsAt, so the
worker also re-posts every firing alert of such a channel each
ALERTMANAGER_RESEND_SECONDS, outside the outbox: a re-send is a refresh of what
Alertmanager already holds (it merges alerts by their labels), not a new message.
"""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, exists, select

from app.alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Channel,
    ChannelKind,
    Notification,
    NotificationKind,
    NotificationStatus,
    rule_channel,
)
from app.alerts.notify import ZERO_TIME, alertmanager_payload
from app.extensions import db

API_PATH = "/api/v2/alerts"
# Prometheus' own rule: an alert says it ends after four missed re-sends.
ENDS_AFTER_RESENDS = 4


def api_url(target: str) -> str:
    """The alerts endpoint under a channel's base URL."""
    return target.rstrip("/") + API_PATH


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _summary(labels: dict, notes: dict) -> str:
    value = notes.get("value") or "n/a"
    threshold = notes.get("threshold") or "n/a"
    kind = notes.get("kind", "").replace("_", " ")
    series = f"{labels.get('account', '-')}/{labels.get('asset', '-')}"
    return f"{labels.get('alertname', '')}: {kind} {series} value {value}, threshold {threshold}"


def _without_empty(values: dict) -> dict:
    # Alertmanager treats an empty label as no label; leave them out rather than send "".
    return {name: value for name, value in values.items() if value}


def to_alertmanager(payload: dict, now: datetime) -> list[dict]:
    """The API v2 body for a notification's payload (our Alertmanager-webhook shape)."""
    cfg = current_app.config
    ends_in = timedelta(seconds=ENDS_AFTER_RESENDS * cfg["ALERTMANAGER_RESEND_SECONDS"])
    resolved = payload["status"] == "resolved"
    alerts = payload["alerts"] or [
        # A channel test: one short-lived alert with the test's own labels.
        {"labels": payload["commonLabels"], "annotations": payload["commonAnnotations"]}
    ]
    body = []
    for alert in alerts:
        labels, notes = alert["labels"], alert["annotations"]
        starts = alert.get("startsAt")
        ends = alert.get("endsAt") if resolved else None
        item = {
            "labels": _without_empty(
                {
                    "alertname": labels.get("alertname", ""),
                    "rule": labels.get("rule_id", ""),
                    "account": labels.get("account", ""),
                    "asset": labels.get("asset", ""),
                    "severity": labels.get("severity", ""),
                }
            ),
            "annotations": _without_empty(
                {
                    "summary": _summary(labels, notes),
                    "description": notes.get("description", ""),
                    "value": notes.get("value", ""),
                    "runbook": notes.get("runbook_url", ""),
                }
            ),
            "startsAt": starts if starts and starts != ZERO_TIME else _iso(now),
            "endsAt": ends if ends and ends != ZERO_TIME else _iso(now + ends_in),
        }
        if alert.get("generatorURL"):
            item["generatorURL"] = alert["generatorURL"]
        body.append(item)
    return body


def resend_targets() -> list[Channel]:
    """Enabled Alertmanager channels."""
    query = select(Channel).where(
        Channel.kind == ChannelKind.ALERTMANAGER, Channel.enabled.is_(True)
    )
    return list(db.session.execute(query.order_by(Channel.id)).scalars())


def firing_to_resend(channel: Channel, now: datetime) -> list[dict]:
    """The API v2 body re-announcing this channel's firing alerts; [] when there are none.

    Only alerts whose firing this channel already received, and with nothing of theirs
    still waiting in the outbox: a refresh never overtakes a message (a resolved waiting
    for its turn) nor announces what a silence kept from the channel.
    """
    announced = exists().where(
        Notification.alert_id == Alert.id,
        Notification.channel_id == channel.id,
        Notification.kind.in_((NotificationKind.FIRING, NotificationKind.REPEAT)),
        Notification.status == NotificationStatus.SENT,
        Notification.created_at >= Alert.fired_at,
    )
    waiting = exists().where(
        Notification.alert_id == Alert.id,
        Notification.channel_id == channel.id,
        Notification.status == NotificationStatus.PENDING,
    )
    query = (
        select(Alert, AlertRule)
        .join(AlertRule, Alert.rule_id == AlertRule.id)
        .join(
            rule_channel,
            and_(rule_channel.c.rule_id == AlertRule.id, rule_channel.c.channel_id == channel.id),
        )
        .where(Alert.state == AlertState.FIRING, announced, ~waiting)
        .order_by(Alert.id)
    )
    body = []
    for alert, rule in db.session.execute(query):
        payload = alertmanager_payload(alert, rule, channel, NotificationKind.REPEAT, "")
        body.extend(to_alertmanager(payload, now))
    return body
