"""Writing notifications to the outbox, in the transaction of the transition.

A message is composed once, when it is queued: every attempt sends the same body
with the same idempotency key.
"""

import hashlib
import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from app.alerts import escalation, grouping, wakeup
from app.alerts.models import (
    ANY,
    Alert,
    AlertRule,
    AlertState,
    Channel,
    Notification,
    NotificationKind,
    RuleKind,
)
from app.alerts.silences import silence_for
from app.extensions import db

log = logging.getLogger(__name__)

ZERO_TIME = "0001-01-01T00:00:00Z"
# The data names no quote currency: notional is amount x price, in whatever
# currency the trading system prices the asset.
QUOTE_CURRENCY = "quote currency"


def _iso(moment: datetime | None) -> str:
    return ZERO_TIME if moment is None else moment.isoformat().replace("+00:00", "Z")


def iso(moment: datetime | None) -> str:
    """A moment as Alertmanager writes it (UTC, "Z"); the zero time for none."""
    return _iso(moment)


def value_unit(rule: AlertRule, asset: str) -> str:
    """The unit a rule's value and threshold are in."""
    if rule.kind == RuleKind.STALE_FEED:
        return "s"
    if rule.kind in (RuleKind.NOTIONAL_ABOVE, RuleKind.GROSS_EXPOSURE_ABOVE):
        return QUOTE_CURRENCY
    if rule.kind == RuleKind.CHANGE_OVER_WINDOW and rule.change_percent:
        return "%"
    return asset if asset != ANY else ""


def public_url(alert: Alert) -> str:
    """PUBLIC_URL without a trailing slash; "" (and a warning) when unset or not http(s)."""
    base = (current_app.config.get("PUBLIC_URL") or "").strip().rstrip("/")
    if base and not base.lower().startswith(("http://", "https://")):
        log.warning("PUBLIC_URL %r is not an http(s) URL: alert %s gets no links", base, alert.id)
        return ""
    if not base:
        log.warning("PUBLIC_URL is not set: the notification for alert %s has no links", alert.id)
    return base


def public_links(alert: Alert, base: str) -> dict[str, str | None]:
    """Links to this alert's page, its history and the alerts page under `base`, or None."""
    if not base:
        return {"alert": None, "alerts": None, "history": None}
    # Paths from the URL map (no request here); the prefix is the public URL's.
    urls = current_app.url_map.bind("")
    history = urls.build("alerts.history", {"rule": alert.rule_id, "asset": alert.asset})
    return {
        "alert": base + urls.build("alerts.detail", {"alert_id": alert.id}),
        "alerts": base + urls.build("alerts.index"),
        "history": base + history,
    }


def alertmanager_payload(
    alert: Alert, rule: AlertRule, channel: Channel, kind: str, group_key: str
) -> dict:
    """The Alertmanager v4 webhook body, so existing receivers understand it."""
    status = "resolved" if kind == NotificationKind.RESOLVED else "firing"
    labels = {
        "alertname": rule.name,
        "severity": rule.severity,
        "account": alert.account,
        "asset": alert.asset,
        "rule_id": str(rule.id),
    }
    annotations = {
        "description": rule.description or "",
        "value": "" if alert.value is None else format(alert.value, "f"),
        "threshold": format(rule.threshold, "f"),
        "kind": rule.kind,
    }
    if rule.runbook_url:
        annotations["runbook_url"] = rule.runbook_url
    base_url = public_url(alert)
    links = public_links(alert, base_url)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": channel.name,
        "groupLabels": {"alertname": rule.name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": base_url,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": _iso(alert.fired_at),
                "endsAt": _iso(alert.resolved_at if status == "resolved" else None),
                "generatorURL": links["alert"] or "",
                "fingerprint": hashlib.sha256(
                    f"{rule.id}:{alert.account}:{alert.asset}".encode()
                ).hexdigest()[:16],
            }
        ],
        "tradingmonitor": {
            "kind": kind,
            "alert_id": alert.id,
            "unit": value_unit(rule, alert.asset),
            "links": links,
        },
    }


def _insert_ignore(values: dict):
    module = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return (
        module.insert(Notification)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )


def recipients(alert: Alert, rule: AlertRule) -> list[Channel]:
    """The rule's own channels and those of every escalation step paged so far."""
    unique = {}
    for channel in [*rule.channels, *escalation.paged_channels(alert, rule)]:
        unique.setdefault(channel.id, channel)
    return list(unique.values())


def queue(
    alert: Alert,
    rule: AlertRule,
    kind: str,
    now: datetime,
    episode_key: str,
    channels: list[Channel] | None = None,
) -> int:
    """Add one notification per enabled channel (the rule's recipients unless given); a
    key already queued is skipped. A grouped channel's group is marked changed instead.

    A silenced alert is evaluated and shown as usual but queues nothing.
    """
    if channels is None and not rule.channels and rule.escalation_policy_id is None:
        return 0
    if silence_for(alert, now) is not None:
        return 0
    if channels is None:
        if kind == NotificationKind.FIRING:
            escalation.start(alert, rule, now)
        channels = recipients(alert, rule)
    queued = 0
    for channel in channels:
        if not channel.enabled:
            continue
        if grouping.labels_of(channel):
            queued += grouping.add(alert, rule, channel, kind, now)
            continue
        group_key = f"rule:{rule.id}/series:{alert.account}/{alert.asset}"
        result = db.session.execute(
            _insert_ignore(
                {
                    "channel_id": channel.id,
                    "alert_id": alert.id,
                    "kind": kind,
                    "dedupe_key": f"{episode_key}/channel:{channel.id}",
                    "payload": alertmanager_payload(alert, rule, channel, kind, group_key),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        )
        queued += result.rowcount or 0
    if queued:
        alert.last_notified_at = now
        wakeup.announce()  # the worker delivers at commit, not at its next pass
    return queued


def on_transition(alert: Alert, rule: AlertRule, to_state: str, now: datetime) -> None:
    """Queue what a transition announces: firing always, resolved if the rule says so."""
    episode = f"alert:{alert.id}/fired:{_iso(alert.fired_at)}"
    if to_state == AlertState.FIRING:
        escalation.reset(alert)
        queue(alert, rule, NotificationKind.FIRING, now, f"{episode}/firing")
        return
    if to_state == AlertState.RESOLVED:
        escalation.end(alert)
    if to_state == AlertState.RESOLVED and rule.send_resolved:
        queue(alert, rule, NotificationKind.RESOLVED, now, f"{episode}/resolved")


def repeat_due(alert, rule: AlertRule, now: datetime) -> bool:
    """Whether a firing, unacknowledged alert is owed its announcement or a reminder now.

    Silences aside. Takes an Alert or a row with its columns, so a worker pass can
    decide without locking the alert.
    """
    if alert.state != AlertState.FIRING or alert.acknowledged_at:
        return False
    if rule.escalation_policy_id is None and not any(c.enabled for c in rule.channels):
        return False
    if alert.last_notified_at is None:
        return True
    interval = timedelta(seconds=rule.repeat_interval_seconds)
    return interval > timedelta(0) and now - alert.last_notified_at >= interval


def queue_repeat(alert: Alert, rule: AlertRule, now: datetime) -> None:
    """While firing and unacknowledged: announce it if it never was, then remind."""
    if not repeat_due(alert, rule, now):
        return
    episode = f"alert:{alert.id}/fired:{_iso(alert.fired_at)}"
    if alert.last_notified_at is None:
        # It fired during a silence: announce it now that nothing mutes it.
        queue(alert, rule, NotificationKind.FIRING, now, f"{episode}/firing")
        return
    interval = timedelta(seconds=rule.repeat_interval_seconds)
    number = int((now - alert.fired_at) / interval)
    queue(alert, rule, NotificationKind.REPEAT, now, f"{episode}/repeat:{number}")
