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


def summary(payload: dict) -> dict:
    """The facts a message shows, from an Alertmanager payload plus our own section."""
    labels, notes = payload["commonLabels"], payload["commonAnnotations"]
    # A channel test has no alert: its facts are the common ones alone.
    (alert,) = payload["alerts"] or [{}]
    ours = payload.get("tradingmonitor", {})
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
    }


def chat_text(payload: dict) -> str:
    """One line for a chat room, with the runbook and the alert's page below it."""
    facts = summary(payload)
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
    message["Subject"] = (subject + f"{facts['account']}/{facts['asset']}")[:200]
    message["Date"] = format_datetime(datetime.now().astimezone())
    # Every attempt of one notification carries the same Message-ID, so a mail
    # system (or person) can drop the repeat of an attempt that did arrive.
    domain = cfg["MAIL_FROM"].rpartition("@")[2] or "tradingmonitor"
    message["Message-ID"] = f"<{idempotency_key}@{domain}>"
    message["Idempotency-Key"] = idempotency_key
    message.set_content(_render("message.txt", facts))
    message.add_alternative(_render("message.html", facts), subtype="html")
    return message
