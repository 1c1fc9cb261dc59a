"""The overview's and history's table rows, rendered to HTML in one pass.

The pages are Jinja templates; only their <tbody> rows are written here. A Jinja
loop spends about 10 µs a row (a generator step, an attribute lookup and an escape
call per value), most of a history page's 100 rows' cost; a format string per row
is a few µs (bench/pages.py).

Safe by construction: names (account, asset) come from the trading system and are
escaped by `_text`. Every other value is text we made from a number or a moment
(`exact`, `utc_iso`, `time_in_zone`, `duration`): digits, signs, ".", ":", "T", "Z",
spaces and a zone's abbreviation, which is escaped as well (see `_local`).
"""

import html
from datetime import datetime, timedelta, tzinfo
from operator import is_
from urllib.parse import quote

from flask import url_for
from markupsafe import Markup

from app.positions.models import notional
from app.templating import duration, exact, time_in_zone, utc_iso

# Escaped names and local times, shared by the requests of this process: a page
# shows the same few accounts and assets on every row, and the same moments again on
# every visit. Cleared when full, like the time texts in app.templating.
CACHE_SIZE = 20_000
_escaped: dict[str, str] = {}
# Rows as rendered, by the identity of the row object and of the zone, plus whatever
# else the markup depends on. positions.queries hands out the same object for the
# same stored values (on SQLite), and a stored snapshot never changes. Identity, not
# equality: equal Decimals may differ in scale (1.0 == 1.00), and a page shows the
# digits sent. Each entry holds the row and the zone, so neither id can be taken by
# another object while it exists.
RENDERED_CACHE_SIZE = 10_000
_history_rows: dict[tuple, tuple] = {}
# Whole pages of history rows, the same way (see history_rows).
PAGE_CACHE_SIZE = 500
_history_pages: dict[tuple, tuple] = {}
_overview_rows: dict[tuple, tuple] = {}

STALE_MARK = ' <span class="badge stale">stale</span>'
ALERT_MARK = ' <a class="badge firing" href="{}">alert</a>'


def _text(value: str) -> str:
    """The value escaped for HTML text and quoted attributes."""
    text = _escaped.get(value)
    if text is None:
        if len(_escaped) >= CACHE_SIZE:
            _escaped.clear()
        text = _escaped[value] = html.escape(value)
    return text


def _local(moment: datetime, tz: tzinfo) -> str:
    # The zone's abbreviation comes from the system's time zone files: escaped too.
    return _text(time_in_zone(moment, tz))


def _rendered(cache: dict, render, row, tz: tzinfo, *extra):
    """render(row, tz, *extra), remembered for this row object, zone and `extra`."""
    key = (id(row), id(tz), *extra)
    found = cache.get(key)
    if found is not None and found[0] is row and found[1] is tz:
        return found[2]
    markup = render(row, tz, *extra)
    if len(cache) >= RENDERED_CACHE_SIZE:
        cache.clear()
    cache[key] = (row, tz, markup)
    return markup


def overview_rows(
    latest, now: datetime, stale_after: timedelta, firing: set, tz: tzinfo
) -> Markup:
    """One <tr> per latest position: amount, price, notional, time, age and marks."""
    history_prefix = url_for("positions.history", asset="X")[:-1]
    alert_mark = ALERT_MARK.format(html.escape(url_for("alerts.index")))
    rows = []
    for p in latest:
        age = now - p.timestamp
        stale = age > stale_after
        alerting = (p.account, p.asset) in firing or (p.account, "*") in firing
        # Everything but the age changes only with the row, its marks or our URLs.
        head, tail = _rendered(
            _overview_rows, _overview_row, p, tz, stale, alerting, history_prefix, alert_mark
        )
        rows.append(f"{head}{duration(age)}{tail}")
    return Markup("".join(rows))  # noqa: S704 (names escaped, the rest made by us)


def _overview_row(
    p, tz: tzinfo, stale: bool, alerting: bool, history_prefix: str, alert_mark: str
) -> tuple[str, str]:
    """The row's markup before and after its age."""
    account, asset, at_utc = _text(p.account), _text(p.asset), utc_iso(p.timestamp)
    amount, price = exact(p.amount), exact(p.price)
    css = ("stale" if stale else "") + (" alerting" if alerting else "")
    marks = (STALE_MARK if stale else "") + (alert_mark if alerting else "")
    head = (
        f'<tr class="{css}" data-account="{account}" data-asset="{asset}"\n'
        f'  data-live-key="{account}/{asset}" '
        # Read by live.js to tell which rows changed since the last refresh.
        f'data-live-values="{amount} {price} {at_utc} {stale} {alerting}">\n'
        f'  <td><a href="{_text(history_prefix + quote(p.asset, safe="/"))}">{asset}</a></td>\n'
        f"  <td>{account}</td>\n"
        f'  <td class="num">{amount}</td>\n'
        f'  <td class="num">{price}</td>\n'
        f'  <td class="num">{exact(notional(p.amount, p.price))}</td>\n'
        f'  <td title="{at_utc}">{_local(p.timestamp, tz)}</td>\n'
        '  <td class="num">'
    )
    tail = f'{marks}</td>\n  <td class="spark"></td>\n</tr>\n'
    return head, tail


def history_rows(snapshots, tz: tzinfo) -> Markup:
    """One <tr> per snapshot: time (UTC on hover), account, amount, price, notional."""
    # A page read again is usually the same row objects in the same order: its rows'
    # markup joined once, checked by identity like a single row's.
    key = (id(tz), *map(id, snapshots))
    found = _history_pages.get(key)
    if found is not None and found[0] is tz and all(map(is_, found[1], snapshots)):
        return found[2]
    rendered_before = len(_history_rows)
    rows = [_rendered(_history_rows, _history_row, p, tz) for p in snapshots]
    markup = Markup("".join(rows))  # noqa: S704 (names escaped, the rest made by us)
    # Kept once every row was rendered before, so the objects are being handed out
    # again: PostgreSQL's reads make new ones every time, never to be asked for again.
    if len(_history_rows) == rendered_before:
        if len(_history_pages) >= PAGE_CACHE_SIZE:
            _history_pages.clear()
        _history_pages[key] = (tz, tuple(snapshots), markup)
    return markup


def _history_row(p, tz: tzinfo) -> str:
    at_utc = utc_iso(p.timestamp)
    return (
        "<tr>\n"
        f'  <td title="{at_utc}"><time datetime="{at_utc}">{_local(p.timestamp, tz)}</time></td>\n'
        f"  <td>{_text(p.account)}</td>\n"
        f'  <td class="num">{exact(p.amount)}</td>\n'
        f'  <td class="num">{exact(p.price)}</td>\n'
        f'  <td class="num">{exact(notional(p.amount, p.price))}</td>\n'
        "</tr>\n"
    )
