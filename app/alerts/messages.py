"""What a person reads: chat text and e-mail bodies, made from a notification's payload."""

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from flask import current_app

from app.alerts.notify import ZERO_TIME

STATUS_WORDS = {
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "repeat": "STILL FIRING",
    "test": "TEST",
}


def _utc_text(iso: str | None) -> str | None:
    if not iso or iso == ZERO_TIME:
        return None
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def _http_url(url: str | None) -> str | None:
    # A rule's runbook is typed by an operator: only http(s) becomes a clickable link.
    return url if url and url.lower().startswith(("http://", "https://")) else None


def _with_unit(number: str | None, unit: str) -> str | None:
    if not number:
        return None
    return f"{number}%" if unit == "%" else f"{number} {unit}".rstrip()


def _one_alert(payload: dict, index: int) -> dict:
    """A group's payload narrowed to one of its alerts, as if sent alone."""
    alert = payload["alerts"][index]
    return {
        **payload,
        "status": alert["status"],
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "alerts": [alert],
        "tradingmonitor": payload["tradingmonitor"]["alerts"][index],
    }


def summary(payload: dict) -> dict:
    """The facts a message shows, from an Alertmanager payload plus our own section.

    A grouped channel's message lists several alerts: its facts are the first alert's,
    with every alert's own facts under "grouped" (empty for a one-alert message).
    """
    ours = payload.get("tradingmonitor", {})
    if "group_id" in ours:
        grouped = [summary(_one_alert(payload, i)) for i in range(len(payload["alerts"]))]
        facts = dict(grouped[0]) if grouped else {}
        kind = ours.get("kind", "")
        status = kind if kind == "repeat" else payload["status"]
        group = ", ".join(f"{k}={v}" for k, v in payload.get("groupLabels", {}).items())
        facts.update(status=STATUS_WORDS.get(status, status.upper()), grouped=grouped)
        return {**facts, "group": group, "test": False}
    labels, notes = payload["commonLabels"], payload["commonAnnotations"]
    # A channel test has no alert: its facts are the common ones alone.
    (alert,) = payload["alerts"] or [{}]
    kind = ours.get("kind", "")
    unit = ours.get("unit", "")
    status = kind if kind in ("repeat", "test") else payload["status"]
    links = ours.get("links") or {}
    return {
        "status": STATUS_WORDS.get(status, status.upper()),
        "test": kind == "test",
        "rule": labels.get("alertname", ""),
        "rule_kind": notes.get("kind", "").replace("_", " "),
        "severity": labels.get("severity", ""),
        "account": labels.get("account", ""),
        "asset": labels.get("asset", ""),
        "description": notes.get("description", ""),
        "value": _with_unit(notes.get("value"), unit),
        "threshold": _with_unit(notes.get("threshold"), unit),
        "firing_since": _utc_text(alert.get("startsAt")),
        "resolved_at": _utc_text(alert.get("endsAt")),
        "runbook_url": notes.get("runbook_url"),
        "runbook_link": _http_url(notes.get("runbook_url")),
        "alert_url": links.get("alert"),
        "alerts_url": links.get("alerts"),
        "history_url": links.get("history"),
        "grouped": [],
    }


def _group_text(facts: dict) -> str:
    """A grouped message for a chat room: a heading, then a line per alert."""
    count = len(facts["grouped"])
    lines = [f"[{facts['status']}] {count} alert(s) of group {facts['group'] or 'all'}"]
    for one in facts["grouped"]:
        line = (
            f"- [{one['status']}] {one['rule']} ({one['severity']}) {one['account']}/"
            f"{one['asset']}: value {one['value'] or 'n/a'}, threshold {one['threshold'] or 'n/a'}"
        )
        lines.append(line + (f" {one['alert_url']}" if one["alert_url"] else ""))
    return "\n".join(lines)


def chat_text(payload: dict) -> str:
    """One line for a chat room, with the runbook and the alert's page below it."""
    facts = summary(payload)
    if facts["grouped"]:
        return _group_text(facts)
    reminder = payload.get("tradingmonitor", {}).get("kind") == "repeat"
    status = "FIRING" if reminder else facts["status"]
    lines = [
        f"{'REMINDER ' if reminder else ''}[{status}] {facts['rule']} ({facts['severity']}) "
        f"{facts['account']}/{facts['asset']}: value {facts['value'] or 'n/a'}, "
        f"threshold {facts['threshold'] or 'n/a'}"
    ]
    if facts["runbook_url"]:
        lines.append(f"Runbook: {facts['runbook_url']}")
    if facts["alert_url"]:
        lines.append(f"Alert: {facts['alert_url']}")
    return "\n".join(lines)


def _render(name: str, facts: dict) -> str:
    # Straight from the app's loader: render_template would run the pages' context
    # processors (current user, nav bar), which mean nothing in a worker.
    return current_app.jinja_env.get_template(f"alerts/email/{name}").render(**facts)


def email_message(address: str, payload: dict, idempotency_key: str) -> EmailMessage:
    """A multipart/alternative e-mail: plain text first, then the same as HTML."""
    cfg = current_app.config
    facts = summary(payload)
    message = EmailMessage()
    message["From"] = cfg["MAIL_FROM"]
    message["To"] = address
    subject = f"[{facts['status']}] {facts['rule']} ({facts['severity']}) "
    subject += f"{facts['account']}/{facts['asset']}"
    if facts["grouped"]:
        count, group = len(facts["grouped"]), facts["group"] or "all"
        subject = f"[{facts['status']}] {count} alert(s) of group {group}"
    message["Subject"] = subject[:200]
    message["Date"] = format_datetime(datetime.now().astimezone())
    # Every attempt of one notification carries the same Message-ID, so a mail
    # system (or person) can drop the repeat of an attempt that did arrive.
    domain = cfg["MAIL_FROM"].rpartition("@")[2] or "tradingmonitor"
    message["Message-ID"] = f"<{idempotency_key}@{domain}>"
    message["Idempotency-Key"] = idempotency_key
    template = "group" if facts["grouped"] else "message"
    message.set_content(_render(f"{template}.txt", facts))
    message.add_alternative(_render(f"{template}.html", facts), subtype="html")
    return message
