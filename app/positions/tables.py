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
# History rows as rendered, by the identity of the row object and the zone.
# positions.queries hands out the same object for the same stored snapshot (on
# SQLite), and a snapshot never changes once stored. Identity, not equality: equal
# Decimals may differ in scale (1.0 == 1.00), and the page shows the digits sent.
HISTORY_CACHE_SIZE = 10_000
_history_rows: dict[tuple[int, int], tuple] = {}

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


def overview_rows(
    latest, now: datetime, stale_after: timedelta, firing: set, tz: tzinfo
) -> Markup:
    """One <tr> per latest position: amount, price, notional, time, age and marks."""
    history_prefix = url_for("positions.history", asset="X")[:-1]
    alert_mark = ALERT_MARK.format(html.escape(url_for("alerts.index")))
    rows = []
    # Unpacked: reading a Row's field by name costs as much as formatting it.
    for account_name, asset_name, at, amount, price in latest:
        age = now - at
        stale = age > stale_after
        alerting = (account_name, asset_name) in firing or (account_name, "*") in firing
        account, asset, at_utc = _text(account_name), _text(asset_name), utc_iso(at)
        amount_text, price_text = exact(amount), exact(price)
        css = ("stale" if stale else "") + (" alerting" if alerting else "")
        marks = (STALE_MARK if stale else "") + (alert_mark if alerting else "")
        # data-live-values is read by live.js to tell which rows changed since the
        # last refresh.
        rows.append(
            f'<tr class="{css}" data-account="{account}" data-asset="{asset}"\n'
            f'  data-live-key="{account}/{asset}" '
            f'data-live-values="{amount_text} {price_text} {at_utc} {stale} {alerting}">\n'
            f'  <td><a href="{_text(history_prefix + quote(asset_name, safe="/"))}">'
            f"{asset}</a></td>\n"
            f"  <td>{account}</td>\n"
            f'  <td class="num">{amount_text}</td>\n'
            f'  <td class="num">{price_text}</td>\n'
            f'  <td class="num">{exact(notional(amount, price))}</td>\n'
            f'  <td title="{at_utc}">{_local(at, tz)}</td>\n'
            f'  <td class="num">{duration(age)}{marks}</td>\n'
            '  <td class="spark"></td>\n'
            "</tr>\n"
        )
    return Markup("".join(rows))  # noqa: S704 (names escaped, the rest made by us)


def history_rows(snapshots, tz: tzinfo) -> Markup:
    """One <tr> per snapshot: time (UTC on hover), account, amount, price, notional."""
    rows = []
    for p in snapshots:
        key = (id(p), id(tz))
        cached = _history_rows.get(key)
        # The entry holds the row and the zone it was made from, so neither id can
        # be reused by another object while it exists.
        if cached is not None and cached[0] is p and cached[1] is tz:
            row = cached[2]
        else:
            row = _history_row(p, tz)
            if len(_history_rows) >= HISTORY_CACHE_SIZE:
                _history_rows.clear()
            _history_rows[key] = (p, tz, row)
        rows.append(row)
    return Markup("".join(rows))  # noqa: S704 (names escaped, the rest made by us)


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
