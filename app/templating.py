"""Jinja filters shared by every room: times in the viewer's zone, exact decimals."""

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal

from flask import Flask, current_app, g, session
from flask_login import current_user

from app.alerts.heartbeat import worker_status
from app.alerts.queries import firing_count
from app.db_types import format_decimal
from app.display import register_display_filters
from app.ops.assets import StaticURLs
from app.user_input import parse_moment

SHOW_UTC_KEY = "show_utc"


def showing_utc() -> bool:
    """True while this browser session has the quick UTC toggle on."""
    return bool(session.get(SHOW_UTC_KEY))


def viewer_timezone() -> zoneinfo.ZoneInfo:
    """The logged-in user's timezone, or the configured default (resolved once a request)."""
    tz = g.get("viewer_timezone")
    if tz is None:
        name = getattr(current_user, "timezone", None) or current_app.config["DEFAULT_TIMEZONE"]
        if showing_utc():
            name = "UTC"
        try:
            tz = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            tz = zoneinfo.ZoneInfo("UTC")
        g.viewer_timezone = tz
    return tz


class FilterError(ValueError):
    """A filter a person typed that we cannot read; the message says how to fix it."""


def parse_local_datetime(text: str, field: str) -> datetime | None:
    """Read a from/to filter typed in the viewer's timezone (or with its own offset), in UTC:
    `2026-01-31 14:00`, `2026-01-31` (midnight) or full ISO 8601."""
    text = text.strip()
    if not text:
        return None
    try:
        return parse_moment(text, zone=viewer_timezone())
    except ValueError as exc:
        raise FilterError(
            f"'{field}' must look like 2026-01-31 14:00 or 2026-01-31 (yyyy-mm-dd hh:mm): {exc}."
        ) from None


def local_time(moment: datetime | None) -> str:
    """`2026-01-31 14:00:05 CET`: the moment in the viewer's timezone, to the second."""
    return time_in_zone(moment, viewer_timezone())


def time_in_zone(moment: datetime | None, tz: tzinfo) -> str:
    if moment is None:
        return ""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_iso(moment: datetime | None) -> str:
    """`2026-01-31T13:00:05.250000Z`: the moment in UTC, for title and datetime attributes."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def exact(value: Decimal | None) -> str:
    """The decimal's digits as stored, in plain notation."""
    if value is None:
        return ""
    return format_decimal(value)


def duration(delta: timedelta) -> str:
    """A compact age, its two largest units, a trailing zero dropped: 45s, 3m 12s, 2h, 4d 1h."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {rest}s" if rest else f"{minutes}m"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {rest}m" if rest else f"{hours}h"
    days, rest = divmod(hours, 24)
    return f"{days}d {rest}h" if rest else f"{days}d"


def layout_context() -> dict:
    """What the layout shows a logged-in user: the firing count, the alert worker's
    state, whether the UTC toggle is on and the zone times are shown in."""
    if not current_user.is_authenticated:
        return {"alert_worker": None}
    return {
        "alert_worker": worker_status(),
        "firing_alerts": firing_count(),
        "display_timezone": viewer_timezone().key,
        "show_utc": showing_utc(),
    }


def register_template_filters(app: Flask) -> None:
    app.jinja_env.globals["static"] = StaticURLs(app.url_for)
    register_display_filters(app)
    app.context_processor(layout_context)
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(utc_iso, "utc")
    app.add_template_filter(exact, "exact")
    app.add_template_filter(duration, "duration")
