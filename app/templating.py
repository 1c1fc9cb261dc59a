"""Jinja filters shared by every room: times in the viewer's zone, exact decimals."""

import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal

from flask import Flask, current_app, g, request, session
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from jinja2 import pass_context

from app.alerts.heartbeat import cached_worker_status
from app.alerts.queries import firing_count
from app.auth.models import Role
from app.db_types import format_decimal
from app.display import register_display_filters
from app.fragments import register_fragments
from app.nav import NavState, nav_bar
from app.ops.assets import StaticURLs
from app.user_input import parse_moment

SHOW_UTC_KEY = "show_utc"
# The template context entry holding the viewer's zone, for the localtime filter.
VIEWER_TZ_KEY = "_viewer_timezone"


def showing_utc() -> bool:
    """True while this browser session has the quick UTC toggle on."""
    return bool(session.get(SHOW_UTC_KEY))


def viewer_timezone() -> zoneinfo.ZoneInfo:
    """The logged-in user's timezone, or the configured default (resolved once a request)."""
    # One lookup through the proxy: the time filters ask for it on every row.
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
    """Read a from/to filter typed in the viewer's timezone (or with its own offset), in UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        return parse_moment(text, zone=viewer_timezone())
    except ValueError as exc:
        raise FilterError(f"'{field}' must look like 2026-01-31T14:00: {exc}.") from None


# Formatted times, shared by the requests of this process: pages show the same
# stored moments again on every visit and live refresh, and a dictionary lookup costs
# a small part of a conversion and formatting. Only UTC moments (what the database
# returns) are kept, so equal keys are always the same instant; cleared when full.
TIME_TEXT_CACHE_SIZE = 20_000
_local_texts: dict[tuple[datetime, tzinfo], str] = {}
_utc_texts: dict[datetime, str] = {}


def _remember(cache: dict, key, text: str) -> str:
    if len(cache) >= TIME_TEXT_CACHE_SIZE:
        cache.clear()
    cache[key] = text
    return text


def local_time(moment: datetime | None) -> str:
    """`2026-01-31 14:00:05 CET`: the moment in the viewer's timezone, to the second."""
    return time_in_zone(moment, viewer_timezone())


@pass_context
def local_time_filter(context, moment: datetime | None) -> str:
    """The localtime filter: the zone comes from the template's context when the page
    has one (a dictionary lookup), not through the request proxies on every row."""
    tz = context.get(VIEWER_TZ_KEY)
    return time_in_zone(moment, tz if tz is not None else viewer_timezone())


def time_in_zone(moment: datetime | None, tz: tzinfo) -> str:
    if moment is None:
        return ""
    key = (moment, tz)
    text = _local_texts.get(key)
    if text is None:
        local = moment.astimezone(tz)
        # isoformat is several times faster than strftime and gives the same digits.
        text = f"{local.isoformat(' ', 'seconds')[:19]} {local.tzname()}"
        if moment.tzinfo is UTC:
            _remember(_local_texts, key, text)
    return text


def utc_iso(moment: datetime | None) -> str:
    """`2026-01-31T13:00:05.250000Z`: the moment in UTC, for title and datetime attributes."""
    if moment is None:
        return ""
    text = _utc_texts.get(moment)
    if text is None:
        text = moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
        if moment.tzinfo is UTC:
            _remember(_utc_texts, moment, text)
    return text


def exact(value: Decimal | None) -> str:
    """The decimal's digits as stored, in plain notation."""
    if value is None:
        return ""
    # str() is several times faster than format() and identical unless it switches
    # to exponent notation (exponent above 0 or below -6 digits), which has an "E".
    text = str(value)
    return format_decimal(value) if "E" in text else text


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


# A page that counted the firing alerts itself leaves the count here for the layout.
FIRING_COUNT_KEY = "firing_count"


# The layout's CSRF token by (signing secret, session secret); see layout_csrf_token.
_signed_csrf_tokens: dict[tuple[str, str], str] = {}


def layout_csrf_token() -> str:
    """The CSRF token the layout's forms carry, signed once per session secret.

    Flask-WTF signs the session's secret anew on every page (~0.1 ms). With no time
    limit on tokens (WTF_CSRF_TIME_LIMIT = None) a signed token is valid for as long
    as its session, so one signature serves every page of it.
    """
    config = current_app.config
    raw = session.get(config["WTF_CSRF_FIELD_NAME"])
    if raw is None or config["WTF_CSRF_TIME_LIMIT"] is not None:
        return generate_csrf()
    key = (config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, raw)
    token = _signed_csrf_tokens.get(key)
    if token is None:
        token = _remember(_signed_csrf_tokens, key, generate_csrf())
    return token


def _firing_count() -> int:
    count = g.pop(FIRING_COUNT_KEY, None)
    return firing_count() if count is None else count


def layout_context() -> dict:
    """What every page shows: the user and the navigation bar; for a logged-in user also
    the firing count, the alert worker's state, the zone of its times and the session's
    CSRF token for its forms.

    Templates get the request's user itself rather than Flask-Login's proxy (whose
    own context processor is not installed): each read through the proxy is a
    context-variable and `g` lookup, and the layout reads the user a dozen times.
    """
    user = current_user._get_current_object()
    if not user.is_authenticated:
        return {
            "current_user": user,
            "alert_worker": None,
            "nav": nav_bar(NavState(request.script_root)),
        }
    tz = viewer_timezone()
    firing, show_utc, csrf = _firing_count(), showing_utc(), layout_csrf_token()
    state = NavState(
        request.script_root,
        user.username,
        user.role,
        user.has_role(Role.ADMIN),
        user.timezone,
        csrf,
        firing,
        show_utc,
        tz.key,
    )
    return {
        "current_user": user,
        "alert_worker": cached_worker_status(),
        "nav": nav_bar(state, request.full_path if request.query_string else request.path),
        "firing_alerts": firing,
        # Replaces Flask-WTF's csrf_token() for logged-in pages.
        "csrf_token": layout_csrf_token,
        "display_timezone": tz.key,
        "show_utc": show_utc,
        VIEWER_TZ_KEY: tz,
    }


# A page builds a dozen URLs (navigation, forms, links) and nearly all repeat from
# request to request; building one through the routing map and the url_defaults hooks
# costs many times a lookup. A URL is a function of the endpoint, its arguments and
# the script root. Static files carry their version, which changes with the file:
# templates name them with `static[...]` (app.ops.assets), and url_for builds them
# every time. Absolute URLs, anchors and blueprint-relative names depend on more and
# are always built. A url_defaults hook that read the request (none does) would have
# to become part of the key.
URL_CACHE_SIZE = 4096


def cached_url_for(build: Callable[..., str]) -> Callable[..., str]:
    """Wrap the app's url_for with a bounded cache of the URLs it built."""
    cache: dict[tuple, str] = {}

    def url_for(endpoint: str, **values) -> str:
        if (
            endpoint[0] == "."
            or endpoint == "static"
            or (values and any(name[0] == "_" for name in values))
        ):
            return build(endpoint, **values)
        try:
            key = (endpoint, request.script_root, *values.items())
            url = cache.get(key)
        except RuntimeError:  # outside a request
            return build(endpoint, **values)
        except TypeError:  # an unhashable argument (a list of query values)
            return build(endpoint, **values)
        if url is None:
            url = build(endpoint, **values)
            if len(cache) >= URL_CACHE_SIZE:
                cache.clear()
            cache[key] = url
        return url

    return url_for


def register_template_filters(app: Flask) -> None:
    app.jinja_env.globals["url_for"] = cached_url_for(app.url_for)
    app.jinja_env.globals["static"] = StaticURLs(app.url_for)
    register_fragments(app)
    register_display_filters(app)
    app.context_processor(layout_context)
    app.add_template_filter(local_time_filter, "localtime")
    app.add_template_filter(utc_iso, "utc")
    app.add_template_filter(exact, "exact")
    app.add_template_filter(duration, "duration")
