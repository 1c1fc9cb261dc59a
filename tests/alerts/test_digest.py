"""The daily digest: at each user's local time, once a day, to a real SMTP server."""

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.alerts.digest import queue_digest, send_due_digests
from app.alerts.digest_content import compose
from app.alerts.digest_models import DigestDelivery
from app.alerts.models import Alert, AlertState, RuleKind
from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from tests.alerts.helpers import add_rule
from tests.alerts.receivers import SmtpReceiver
from tests.conftest import make_user
from tests.positions.helpers import snap, store

PUBLIC = "https://monitor.example.com"


def subscribe(app, username="alice", zone="Europe/London", at=time(8, 0), **fields) -> int:
    """A user who wants the digest at `at` in `zone`."""
    user_id = make_user(app, username)
    with app.app_context():
        user = db.session.get(User, user_id)
        user.timezone = zone
        user.email = f"{username}@example.com"
        user.digest_enabled = True
        user.digest_at = at
        for name, value in fields.items():
            setattr(user, name, value)
        db.session.commit()
    return user_id


@pytest.fixture
def smtp(app):
    with SmtpReceiver() as receiver:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=receiver.port, PUBLIC_URL=PUBLIC)
        yield receiver


def run(app, now: datetime) -> int:
    """One worker pass's digest call, in its own app context (its own session)."""
    with app.app_context():
        return send_due_digests(now)


def passes(app, start: datetime, end: datetime, step=timedelta(minutes=15)) -> list[datetime]:
    """Run a pass every `step` from start to end; the moments that sent a digest."""
    sent_at, now = [], start
    while now <= end:
        if run(app, now):
            sent_at.append(now)
        now += step
    return sent_at


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "due"),
    [
        (date(2026, 1, 15), utc(2026, 1, 15, 8, 0)),  # GMT: 08:00 local is 08:00 UTC
        (date(2026, 7, 15), utc(2026, 7, 15, 7, 0)),  # BST: 08:00 local is 07:00 UTC
    ],
    ids=["winter", "summer"],
)
def test_the_digest_goes_at_the_users_local_time_not_before_and_once(app, smtp, day, due):
    subscribe(app)

    assert run(app, due - timedelta(minutes=1)) == 0
    assert smtp.messages == []
    assert run(app, due) == 1
    assert run(app, due + timedelta(minutes=1)) == 0
    assert run(app, due + timedelta(hours=2)) == 0

    assert smtp.recipients == [["alice@example.com"]]
    (message,) = smtp.messages
    assert message["Subject"].startswith(f"TradingMonitor daily digest {day.isoformat()}")
    with app.app_context():
        (row,) = db.session.execute(db.select(DigestDelivery)).scalars()
        assert (row.local_date, row.status, row.attempts) == (day, "sent", 1)


def at_utc(*moments: tuple[int, int, int, int, int]) -> list[datetime]:
    return [utc(*moment) for moment in moments]


@pytest.mark.parametrize(
    ("zone", "at", "start", "sent"),
    [
        # London springs forward at 01:00 UTC on 29 March: 08:00 BST is 07:00 UTC.
        (
            "Europe/London",
            time(8, 0),
            utc(2026, 3, 28, 0, 0),
            at_utc((2026, 3, 28, 8, 0), (2026, 3, 29, 7, 0), (2026, 3, 30, 7, 0)),
        ),
        # New York falls back at 06:00 UTC on 1 November: 08:00 EST is 13:00 UTC.
        (
            "America/New_York",
            time(8, 0),
            utc(2026, 10, 31, 0, 0),
            at_utc((2026, 10, 31, 12, 0), (2026, 11, 1, 13, 0), (2026, 11, 2, 13, 0)),
        ),
        # 01:30 happens twice in London on 25 October: one digest, at the first.
        (
            "Europe/London",
            time(1, 30),
            utc(2026, 10, 24, 0, 0),
            at_utc((2026, 10, 24, 0, 30), (2026, 10, 25, 0, 30), (2026, 10, 26, 1, 30)),
        ),
        # 01:30 does not happen in London on 29 March: that day's digest comes at 02:30 BST.
        (
            "Europe/London",
            time(1, 30),
            utc(2026, 3, 28, 0, 0),
            at_utc((2026, 3, 28, 1, 30), (2026, 3, 29, 1, 30), (2026, 3, 30, 0, 30)),
        ),
    ],
    ids=["london-spring-forward", "new-york-fall-back", "ambiguous-time", "skipped-time"],
)
def test_across_a_dst_change_each_local_day_gets_one_digest(app, smtp, zone, at, start, sent):
    subscribe(app, zone=zone, at=at)

    assert passes(app, start, start + timedelta(days=3) - timedelta(minutes=15)) == sent

    assert len(smtp.messages) == 3
    with app.app_context():
        days = db.session.execute(
            db.select(DigestDelivery.local_date).order_by(DigestDelivery.id)
        ).scalars()
        first = start.date()
        assert list(days) == [first + timedelta(days=n) for n in range(3)]


def test_a_worker_back_within_three_hours_catches_up_later_it_skips_the_day(app, smtp):
    subscribe(app, zone="UTC", at=time(8, 0))

    assert run(app, utc(2026, 1, 15, 10, 59)) == 1
    assert run(app, utc(2026, 1, 16, 11, 0)) == 0
    assert run(app, utc(2026, 1, 17, 8, 0)) == 1


def test_a_late_evening_time_is_caught_up_after_local_midnight(app, smtp):
    subscribe(app, zone="Asia/Tokyo", at=time(23, 30))

    # 23:30 JST on 15 January is 14:30 UTC; a worker back at 00:15 JST still sends it.
    assert run(app, utc(2026, 1, 15, 15, 15)) == 1
    with app.app_context():
        day = db.session.execute(db.select(DigestDelivery.local_date)).scalar_one()
    assert day == date(2026, 1, 15)


def test_two_workers_with_their_own_sessions_queue_one_digest(app, smtp):
    user_id = subscribe(app)
    now, day = utc(2026, 1, 15, 8, 0), date(2026, 1, 15)

    # Both found "not queued yet" and insert: the unique (user, day) keeps the first.
    queued = []
    for _ in range(2):
        with app.app_context():
            content = compose(now, ZoneInfo("Europe/London"), day.isoformat())
            queued.append(queue_digest(db.session.get(User, user_id), day, content, now))
            db.session.commit()
    assert queued == [True, False]

    assert run(app, now) == 1
    assert run(app, now) == 0
    assert len(smtp.messages) == 1


def test_two_workers_racing_send_one_digest(any_app):
    with SmtpReceiver() as smtp:
        any_app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port)
        for n in range(5):
            subscribe(any_app, f"user{n}")
        now = utc(2026, 1, 15, 8, 0)
        start = threading.Barrier(2)
        sent, errors = [], []

        def worker():
            try:
                start.wait(10)
                sent.append(run(any_app, now))
            except Exception as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert errors == []
    assert sum(sent) == 5
    assert sorted(r[0] for r in smtp.recipients) == [f"user{n}@example.com" for n in range(5)]


@pytest.mark.parametrize(
    "fields",
    [{"digest_enabled": False}, {"email": None}, {"active": False}],
    ids=["opted-out", "no-address", "disabled-user"],
)
def test_no_digest_without_opt_in_an_address_and_an_active_account(app, smtp, fields):
    subscribe(app, **fields)

    assert passes(app, utc(2026, 1, 15, 0, 0), utc(2026, 1, 15, 23, 45)) == []
    assert smtp.messages == []


def test_an_smtp_server_down_is_retried_with_backoff(app, smtp, monkeypatch):
    subscribe(app, zone="UTC")
    now = utc(2026, 1, 15, 8, 0)
    app.config.update(SMTP_PORT=1, NOTIFY_RETRY_BASE_SECONDS=0)
    # An attempt schedules its retry on the clock: keep that on the passes' day, so that
    # the wall clock (08:00-11:00 UTC, when today's digest is due too) changes nothing.
    monkeypatch.setattr("app.alerts.digest.utcnow", lambda: now)

    assert run(app, now) == 0
    with app.app_context():
        row = db.session.execute(db.select(DigestDelivery)).scalar_one()
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error.startswith("SMTP")

    app.config.update(SMTP_PORT=smtp.port)
    later = now + timedelta(minutes=1)
    assert run(app, later) == 1
    assert run(app, later) == 0
    assert len(smtp.messages) == 1


def desk(app, now: datetime) -> dict[str, int]:
    """Two firing alerts (one acknowledged), one over, positions and limits; alert ids."""
    add_rule(app, "BTC too big", "10", severity="critical")
    add_rule(app, "ETH too big", "100", asset="ETH")
    add_rule(app, "SOL too big", "5", asset="SOL")
    add_rule(app, "Big notional", "5000000", kind=RuleKind.NOTIONAL_ABOVE, asset="*")
    store(
        app,
        [
            snap(asset="BTC", amount="12.5", price="65000.25", at=now - timedelta(hours=5)),
            snap(asset="ETH", amount="150", price="3000", at=now - timedelta(hours=2)),
            snap(asset="SOL", amount="6", price="150", at=now - timedelta(hours=3)),
            snap(asset="DOGE", amount="1000", price=None, at=now - timedelta(hours=1)),
        ],
    )
    store(app, [snap(asset="SOL", amount="1", price="150", at=now - timedelta(hours=1))])
    with app.app_context():
        alerts = {a.rule.name: a for a in db.session.execute(db.select(Alert)).scalars()}
        alerts["ETH too big"].acknowledged_at = now - timedelta(hours=1)
        db.session.commit()
        assert alerts["SOL too big"].state == AlertState.RESOLVED
        return {name: alert.id for name, alert in alerts.items()}


def test_the_digest_lists_alerts_exposures_and_limits_with_links(app, smtp):
    ids = desk(app, utcnow())
    # Read five hours after the alerts fired.
    now = utcnow() + timedelta(hours=5)
    subscribe(app, zone="UTC", at=now.time().replace(second=0, microsecond=0))

    assert run(app, now) == 1

    (message,) = smtp.messages
    assert message["Subject"] == (
        f"TradingMonitor daily digest {now.date().isoformat()}: 2 firing, 1 unacknowledged"
    )
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    # Unacknowledged first (waiting 5 hours), then acknowledged, then the one over.
    btc, eth, sol = (text.index(f"- {name} too big") for name in ("BTC", "ETH", "SOL"))
    assert btc < eth < sol
    assert "BTC too big (critical) main/BTC: firing, unacknowledged for 5h" in text
    assert "ETH too big (warning) main/ETH: firing, acknowledged" in text
    assert "SOL too big (warning) main/SOL: resolved" in text
    assert "2 firing, 1 unacknowledged, 3 fired in the last 24 hours" in text
    assert f"{PUBLIC}/alerts/{ids['BTC too big']}" in text
    assert f'href="{PUBLIC}/alerts/{ids["BTC too big"]}"' in html
    # Exposures by notional, largest first; the unpriced position is counted, not listed.
    # Numbers as the pages show them: separators, the asset's precision, units.
    assert (
        "gross notional 1,262,653.12 USD, net 1,262,653.12 USD (4 position(s), 1 without a price)"
        in text
    )
    assert "main/BTC: notional 812,503.12 USD (12.5 BTC at 65,000.25 USD)" in text
    assert text.index("main/BTC: notional") < text.index("main/ETH: notional 450,000.00 USD")
    assert "main/DOGE" not in text.split("LARGEST EXPOSURES")[1].split("CLOSEST LIMITS")[0]
    # Limits nearest to breach first: BTC and ETH past theirs.
    limits = text.split("CLOSEST LIMITS")[1]
    assert (
        "- BTC too big on main/BTC: BREACHED, value 12.5 BTC, limit 10.0 BTC, "
        "utilisation 125.0 %, headroom \u22122.5 BTC" in limits
    )
    assert (
        "- SOL too big on main/SOL: value 1 SOL, limit 5 SOL, utilisation 20.0 %, headroom 4 SOL"
        in limits
    )
    assert "limit 5,000,000.00 USD" in limits
    assert limits.index("BTC too big") < limits.index("SOL too big")
    assert f"Limits: {PUBLIC}/limits" in text
    assert f'href="{PUBLIC}/account"' in html


def test_an_asset_name_with_markup_is_escaped_in_the_html_part(app, smtp):
    now = utcnow().replace(microsecond=0)
    add_rule(app, "<b>evil</b>", "1", asset="*")
    store(app, [snap(asset="<script>x</script>", amount="2", at=now - timedelta(minutes=5))])
    subscribe(app, zone="UTC", at=(now - timedelta(minutes=1)).time())

    assert run(app, now) == 1

    html = smtp.messages[0].get_body(("html",)).get_content()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<b>evil</b>" not in html


def test_the_worker_pass_sends_the_digest_at_its_time(app, smtp, monkeypatch):
    from app.alerts import worker

    subscribe(app, zone="America/New_York")
    clock = {"now": utc(2026, 1, 15, 12, 59)}
    monkeypatch.setattr("app.alerts.worker.utcnow", lambda: clock["now"])

    def one_pass():
        with app.app_context():
            worker.run_pass("test", interval=10, started_at=clock["now"], passes=1)

    one_pass()
    assert smtp.messages == []
    clock["now"] = utc(2026, 1, 15, 13, 0)  # 08:00 EST
    one_pass()
    one_pass()
    assert smtp.recipients == [["alice@example.com"]]


def test_one_digest_that_cannot_be_composed_does_not_stop_the_others(app, smtp, monkeypatch):
    from app.alerts import digest

    subscribe(app, "alice")
    subscribe(app, "bob")
    compose = digest.compose

    def broken_for_alice(now, tz, day):
        if len(smtp.messages) == 0 and not broken_for_alice.failed:
            broken_for_alice.failed = True
            raise RuntimeError("template bug")
        return compose(now, tz, day)

    broken_for_alice.failed = False
    monkeypatch.setattr(digest, "compose", broken_for_alice)
    now = utc(2026, 1, 15, 8, 0)

    assert run(app, now) == 1
    assert smtp.recipients == [["bob@example.com"]]
    # The next pass writes alice's.
    assert run(app, now + timedelta(minutes=1)) == 1
    assert smtp.recipients == [["bob@example.com"], ["alice@example.com"]]


def test_the_cli_previews_a_digest_and_sends_it_now(app, smtp):
    subscribe(app, zone="Europe/Paris", at=time(7, 15))
    runner = app.test_cli_runner()

    shown = runner.invoke(args=["alerts", "digest", "--user", "Alice"])

    assert shown.exit_code == 0, shown.output
    assert "TradingMonitor daily digest for" in shown.output
    assert "alice gets it daily at 07:15 Europe/Paris" in shown.output
    assert smtp.messages == []

    sent = runner.invoke(args=["alerts", "digest", "--user", "alice", "--send"])

    assert sent.exit_code == 0, sent.output
    assert "Sent to alice@example.com" in sent.output
    assert smtp.recipients == [["alice@example.com"]]
    missing = runner.invoke(args=["alerts", "digest", "--user", "nobody"])
    assert missing.exit_code != 0 and "No user named 'nobody'" in missing.output
