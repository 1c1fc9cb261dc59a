"""Jinja filters shared by every room: times in the viewer's zone, exact decimals."""

import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import Flask, current_app, g
from flask_login import current_user

from app.alerts.queries import firing_count
from app.db_types import format_decimal


def viewer_timezone() -> zoneinfo.ZoneInfo:
    """The logged-in user's timezone, or the configured default (resolved once a request)."""
    if "viewer_timezone" not in g:
        name = getattr(current_user, "timezone", None) or current_app.config["DEFAULT_TIMEZONE"]
        try:
            g.viewer_timezone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            g.viewer_timezone = zoneinfo.ZoneInfo("UTC")
    return g.viewer_timezone


DATETIME_INPUT_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


class FilterError(ValueError):
    """A filter a person typed that we cannot read; the message says how to fix it."""


def parse_local_datetime(text: str, field: str) -> datetime | None:
    """Read a from/to filter typed in the viewer's timezone."""
    text = text.strip()
    if not text:
        return None
    for fmt in DATETIME_INPUT_FORMATS:
        try:
            naive = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=viewer_timezone())
    raise FilterError(f"'{field}' must look like 2026-01-31T14:00 (got {text[:40]!r}).")


def local_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(viewer_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc_iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def exact(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value)


def duration(delta: timedelta) -> str:
    """A compact age: 45s, 3m 12s, 2h 5m, 4d 1h."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    # The two largest units, dropping a trailing zero: "5m", "3m 12s", "2d 4h".
    shown = [f"{value}{unit}" for value, unit in parts[:2] if value or (value, unit) == parts[0]]
    return " ".join(shown)


def firing_alerts_context() -> dict:
    """Every logged-in page shows how many alerts are firing."""
    if not getattr(current_user, "is_authenticated", False):
        return {}
    return {"firing_alerts": firing_count()}


def register_template_filters(app: Flask) -> None:
    app.context_processor(firing_alerts_context)
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(utc_iso, "utc")
    app.add_template_filter(exact, "exact")
    app.add_template_filter(duration, "duration")
