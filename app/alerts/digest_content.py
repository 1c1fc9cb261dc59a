"""What a daily digest says: the day's alerts, the largest exposures, the closest limits.

Composed once, when the digest is queued, as plain JSON (decimals as their exact text,
times already in the reader's timezone), so every attempt sends the same e-mail.
"""

import logging
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from flask import current_app
from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import contains_eager

from app.alerts.models import Alert, AlertState
from app.alerts.notify import QUOTE_CURRENCY, value_unit
from app.alerts.queries import firing_series
from app.db_types import EXACT
from app.display import PERCENT_PRECISION, DisplaySettings, grouped
from app.extensions import db
from app.positions.limits import AMOUNT, limit_rows
from app.positions.queries import latest_position_rows
from app.positions.totals import desk_total, overview_rows
from app.templating import duration, time_in_zone

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
# What one e-mail lists of each section; the rest is counted and linked.
ALERT_ROWS = 20
EXPOSURE_ROWS = 10
LIMIT_ROWS = 10


def digest_alerts(now: datetime) -> list[Alert]:
    """Alerts firing now or fired in the last 24 hours, in the order to act on them:
    firing and unacknowledged first, the one waiting longest first; then firing and
    acknowledged; then those that fired and are over."""
    waiting = case(
        (and_(Alert.state == AlertState.FIRING, Alert.acknowledged_at.is_(None)), 0),
        (Alert.state == AlertState.FIRING, 1),
        else_=2,
    )
    return list(
        db.session.execute(
            select(Alert)
            .join(Alert.rule)
            .options(contains_eager(Alert.rule))
            .where(or_(Alert.state == AlertState.FIRING, Alert.fired_at >= now - DAY))
            .order_by(waiting, Alert.fired_at, Alert.id)
        ).scalars()
    )


def base_url() -> str:
    """PUBLIC_URL without its trailing slash, or "" when unset or not http(s)."""
    base = (current_app.config.get("PUBLIC_URL") or "").strip().rstrip("/")
    if not base.lower().startswith(("http://", "https://")):
        log.warning("PUBLIC_URL is not an http(s) URL: the daily digest has no links")
        return ""
    return base


def _url(base: str, endpoint: str, **values) -> str | None:
    if not base:
        return None
    # Paths from the URL map (no request here); the prefix is the public URL's.
    return base + current_app.url_map.bind("").build(endpoint, values)


class Numbers:
    """Numbers as the pages show them, as plain text: separators, the asset's display
    precision, units (app.display). Made per digest: a worker lives for days, and the
    default precisions follow the data."""

    def __init__(self) -> None:
        self.settings = DisplaySettings(current_app.config)

    def amount(self, value: Decimal | None, asset: str) -> str | None:
        if value is None:
            return None
        return f"{grouped(value, self.settings.precision(asset, value))} {asset}"

    def money(self, value: Decimal | None) -> str | None:
        if value is None:
            return None
        return f"{grouped(value, self.settings.quote_places)} {self.settings.quote}"

    def price(self, value: Decimal | None) -> str | None:
        return None if value is None else f"{grouped(value, None)} {self.settings.quote}"

    def alert_value(self, alert: Alert) -> str | None:
        """An alert's value in its rule's unit (an amount, a notional, %, seconds)."""
        unit = value_unit(alert.rule, alert.asset)
        if alert.value is None or unit == QUOTE_CURRENCY:
            return self.money(alert.value)
        if unit == alert.asset:
            return self.amount(alert.value, alert.asset)
        return f"{grouped(alert.value, None)} {unit}".rstrip()

    def percent(self, share: Decimal | None) -> str | None:
        if share is None:
            return None
        return f"{grouped(EXACT.multiply(share, Decimal(100)), PERCENT_PRECISION)} %"


def _alert_facts(alert: Alert, now: datetime, tz: tzinfo, base: str, numbers: Numbers) -> dict:
    firing = alert.state == AlertState.FIRING
    return {
        "rule": alert.rule.name,
        "severity": alert.rule.severity,
        "account": alert.account,
        "asset": alert.asset,
        "state": alert.state,
        "value": numbers.alert_value(alert),
        "fired_at": time_in_zone(alert.fired_at, tz),
        "acknowledged": alert.acknowledged_at is not None,
        # How long it has waited for someone: only a firing, unacknowledged alert waits.
        "waiting": duration(now - alert.fired_at)
        if firing and alert.acknowledged_at is None and alert.fired_at
        else None,
        "url": _url(base, "alerts.detail", alert_id=alert.id),
    }


def _alerts_section(now: datetime, tz: tzinfo, base: str, numbers: Numbers) -> dict:
    alerts = digest_alerts(now)
    firing = [a for a in alerts if a.state == AlertState.FIRING]
    return {
        "fired": sum(1 for a in alerts if a.fired_at and a.fired_at >= now - DAY),
        "open": len(firing),
        "unacknowledged": sum(1 for a in firing if a.acknowledged_at is None),
        "rows": [_alert_facts(a, now, tz, base, numbers) for a in alerts[:ALERT_ROWS]],
        "more": max(0, len(alerts) - ALERT_ROWS),
    }


def _exposures_section(now: datetime, stale_after: timedelta, numbers: Numbers) -> dict:
    """Positions by the size of their notional (|amount x price|), largest first."""
    _, firing = firing_series()
    rows = overview_rows(latest_position_rows(), now, stale_after, firing)
    desk = desk_total(rows)
    priced = sorted(
        (row for row in rows if row.notional is not None),
        key=lambda row: (-row.notional.copy_abs(), row.account, row.asset),
    )
    return {
        "gross": numbers.money(desk.gross_notional),
        "net": numbers.money(desk.net_notional),
        "positions": desk.positions,
        "unpriced": desk.unpriced,
        "rows": [
            {
                "account": row.account,
                "asset": row.asset,
                "amount": numbers.amount(row.amount, row.asset),
                "price": numbers.price(row.price),
                "notional": numbers.money(row.notional),
                "stale": row.stale,
            }
            for row in priced[:EXPOSURE_ROWS]
        ],
        "more": max(0, len(priced) - EXPOSURE_ROWS),
    }


def _limits_section(now: datetime, stale_after: timedelta, numbers: Numbers) -> dict:
    """The limits screen's rows, nearest to breach first."""
    rows = limit_rows(now, stale_after)

    def measure(row, value):
        return numbers.amount(value, row.asset) if row.metric == AMOUNT else numbers.money(value)

    return {
        "rows": [
            {
                "rule": row.rule.name,
                "account": row.account,
                "asset": row.asset,
                "metric": row.metric,
                "value": measure(row, row.value),
                "limit": measure(row, row.limit),
                "utilisation": numbers.percent(row.utilisation),
                "headroom": measure(row, row.headroom),
                "breached": row.breached,
            }
            for row in rows[:LIMIT_ROWS]
        ],
        "more": max(0, len(rows) - LIMIT_ROWS),
    }


def compose(now: datetime, tz: tzinfo, local_date: str) -> dict:
    """Everything one digest says, for a reader in `tz`, as JSON-ready values."""
    base = base_url()
    numbers = Numbers()
    stale_after = timedelta(seconds=current_app.config["STALE_AFTER_SECONDS"])
    return {
        "date": local_date,
        "timezone": str(tz),
        "as_of": time_in_zone(now, tz),
        "alerts": _alerts_section(now, tz, base, numbers),
        "exposures": _exposures_section(now, stale_after, numbers),
        "limits": _limits_section(now, stale_after, numbers),
        "links": {
            "alerts": _url(base, "alerts.index"),
            "overview": _url(base, "positions.overview"),
            "limits": _url(base, "limits.index"),
            "account": _url(base, "account.index"),
        },
    }
