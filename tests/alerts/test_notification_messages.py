"""What a person reads: the e-mail's text and HTML, and links from the public URL."""

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from app.alerts.models import Alert, Channel, RuleKind
from app.auth.models import Role
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.outbox import deliver, notifications, setup_rule
from tests.alerts.receivers import SmtpReceiver, WebhookReceiver
from tests.conftest import ParsedPage, client_as, csrf_token_from
from tests.positions.helpers import snap, store

PUBLIC = "https://tm.example.com/desk"
SCRIPT = "<script>alert(1)</script>"


def emails(app, *amounts, on="BTC", **rule):
    """Send the e-mails a rule owes after these snapshots of asset `on`, one a second."""
    with SmtpReceiver() as smtp:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
        setup_rule(app, kind="email", target="desk@example.com", **rule)
        for second, amount in enumerate(amounts):
            at = utcnow() + timedelta(seconds=second)
            store(app, [snap(asset=on, at=at, amount=amount)])
        assert deliver(app) == (len(amounts), 0)
    return smtp.messages


def webhook_body(app):
    """The one webhook body a rule owes after a snapshot of 12.5 BTC."""
    with WebhookReceiver() as receiver:
        setup_rule(app, target=receiver.url)
        store(app, [snap(at=utcnow(), amount="12.5")])
        assert deliver(app) == (1, 0)
    (body,) = receiver.received
    return body


def bodies(message):
    """The plain text, the HTML, and the HTML as a browser would parse it."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html, ParsedPage(html)


def shown(page) -> str:
    """The page's text as a reader sees it: whitespace between elements collapsed."""
    return " ".join(" ".join(page.texts).split())


def alert_times(app):
    with app.app_context():
        alert = db.session.execute(db.select(Alert)).scalar_one()
        return alert.id, alert.rule_id, alert.fired_at, alert.resolved_at


def utc_text(moment):
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def test_email_says_what_fired_where_and_since_when_with_links(app):
    app.config["PUBLIC_URL"] = PUBLIC + "/"
    (message,) = emails(app, "12.5")
    alert_id, rule_id, fired_at, _ = alert_times(app)
    text, html, page = bodies(message)
    alert_page = f"{PUBLIC}/alerts/{alert_id}"
    history = f"{PUBLIC}/alerts/history?rule={rule_id}&asset=BTC"
    for readable in (
        "FIRING: BTC too big (critical)",
        "position above rule",
        "account main, asset BTC",
        "12.5 BTC",
        "10 BTC",
        utc_text(fired_at),
    ):
        assert readable in text
        assert readable in shown(page)
    assert "Runbook:       https://wiki.example/btc" in text
    assert f"This alert:    {alert_page}" in text
    assert f"Alert history: {history}" in text
    assert f"Open alerts:   {PUBLIC}/alerts/" in text
    links = [a["href"] for a in page.elements("a")]
    assert links == ["https://wiki.example/btc", alert_page, history, f"{PUBLIC}/alerts/"]
    # Readable, not the machine payload.
    assert "{" not in text and "groupKey" not in text and "groupKey" not in html


def test_email_carries_the_notification_key_as_message_id(app):
    (message,) = emails(app, "12.5")
    (row,) = notifications(app)
    assert message["Message-ID"] == f"<{row.idempotency_key}@localhost>"
    assert message["Idempotency-Key"] == row.idempotency_key


def test_resolved_email_says_when_it_resolved(app):
    app.config["PUBLIC_URL"] = PUBLIC
    _, resolved = emails(app, "12.5", "1")
    _, _, fired_at, resolved_at = alert_times(app)
    assert resolved["Subject"] == "[RESOLVED] BTC too big (critical) main/BTC"
    text, _, _ = bodies(resolved)
    assert "Value:         1 BTC" in text
    assert f"Firing since:  {utc_text(fired_at)}" in text
    assert f"Resolved at:   {utc_text(resolved_at)}" in text


def test_html_email_escapes_an_asset_name(app):
    app.config["PUBLIC_URL"] = PUBLIC
    (message,) = emails(app, "12.5", on=SCRIPT, asset="*")
    text, html, page = bodies(message)
    assert page.elements("script") == []
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f"account main, asset {SCRIPT}" in shown(page)
    assert f"asset {SCRIPT}" in text  # plain text is not HTML: shown as sent
    history = [a["href"] for a in page.elements("a") if "/history" in a["href"]]
    assert history == [f"{PUBLIC}/alerts/history?rule=1&asset=%3Cscript%3Ealert(1)%3C/script%3E"]


def test_notional_values_are_in_the_quote_currency(app):
    (message,) = emails(app, "12.5", rule_kind=RuleKind.NOTIONAL_ABOVE, threshold=Decimal(1000))
    text, _, _ = bodies(message)
    assert "notional above rule" in text
    assert "Value:         1250.0 quote currency" in text
    assert "Threshold:     1000 quote currency" in text


def test_without_public_url_messages_have_no_links_and_the_log_says_why(app, caplog):
    caplog.set_level(logging.WARNING, logger="app.alerts.notify")
    (message,) = emails(app, "12.5")
    text, _, page = bodies(message)
    assert "No links: the administrator has not set PUBLIC_URL." in text
    assert [a["href"] for a in page.elements("a")] == ["https://wiki.example/btc"]
    assert "localhost" not in text and "127.0.0.1" not in text
    assert any("PUBLIC_URL is not set" in r.getMessage() for r in caplog.records)


def test_webhook_links_start_with_the_public_url(app):
    app.config["PUBLIC_URL"] = PUBLIC
    body = webhook_body(app)
    assert body["externalURL"] == PUBLIC
    (alert,) = body["alerts"]
    # The alert's own page: its timeline, chart and the rule's lines.
    alert_id = body["tradingmonitor"]["alert_id"]
    assert alert["generatorURL"] == f"{PUBLIC}/alerts/{alert_id}"
    assert body["tradingmonitor"]["links"]["alert"] == f"{PUBLIC}/alerts/{alert_id}"
    assert body["tradingmonitor"]["links"]["alerts"] == f"{PUBLIC}/alerts/"


@pytest.mark.parametrize("public_url", [None, "", "tm.example.com", "javascript:alert(1)"])
def test_webhook_without_an_http_public_url_has_empty_links(app, public_url, caplog):
    app.config["PUBLIC_URL"] = public_url
    body = webhook_body(app)
    assert body["externalURL"] == "" and body["alerts"][0]["generatorURL"] == ""
    assert body["tradingmonitor"]["links"] == {"alert": None, "alerts": None, "history": None}
    assert any("PUBLIC_URL" in r.getMessage() for r in caplog.records)


def test_channel_test_button_sends_a_readable_test_email(app):
    with app.app_context():
        db.session.add(Channel(name="desk", kind="email", target="desk@example.com"))
        db.session.commit()
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")
    with SmtpReceiver() as smtp:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
        response = admin.post("/alerts/channels/1/test", data={"csrf_token": token})
    assert response.status_code == 302
    (message,) = smtp.messages
    assert message["Subject"].startswith("[TEST] TradingMonitor test")
    assert message["Idempotency-Key"].startswith("tm-")
    text, _, page = bodies(message)
    assert text.strip() == "A test notification from TradingMonitor: this channel works."
    assert "this channel works" in shown(page)
