"""The overview's and history's table rows, rendered to HTML in one pass.

The pages are Jinja templates; only their <tbody> rows are written here. A Jinja
loop spends about 10 µs a row (a generator step, an attribute lookup and an escape
call per value), most of a history page's 100 rows' cost; a format string per row
is a few µs (bench/pages.py). Safe by construction: every value, ours or the
trading system's, is escaped in `_row` on its way into the markup.
"""

import html
from datetime import datetime, timedelta, tzinfo
from urllib.parse import quote

from flask import url_for
from markupsafe import Markup

from app.positions.models import notional
from app.templating import duration, exact, time_in_zone, utc_iso

# The rows' markup: every {field} is filled with an escaped value, but {marks}.
OVERVIEW_ROW = (
    '<tr class="{css}" data-account="{account}" data-asset="{asset}"\n'
    '  data-live-key="{account}/{asset}" data-live-values="{live_values}">\n'
    '  <td><a href="{history_url}">{asset}</a></td>\n'
    "  <td>{account}</td>\n"
    '  <td class="num">{amount}</td>\n'
    '  <td class="num">{price}</td>\n'
    '  <td class="num">{notional}</td>\n'
    '  <td title="{at_utc}">{at_local}</td>\n'
    '  <td class="num">{age}{marks}</td>\n'
    '  <td class="spark"></td>\n'
    "</tr>\n"
)
NO_MARKS = Markup()
STALE_MARK = Markup(' <span class="badge stale">stale</span>')
ALERT_MARK = Markup(' <a class="badge firing" href="{}">alert</a>')
HISTORY_ROW = (
    "<tr>\n"
    '  <td title="{at_utc}"><time datetime="{at_utc}">{at_local}</time></td>\n'
    "  <td>{account}</td>\n"
    '  <td class="num">{amount}</td>\n'
    '  <td class="num">{price}</td>\n'
    '  <td class="num">{notional}</td>\n'
    "</tr>\n"
)


def _row(pattern: str, values: dict, markup: Markup = NO_MARKS) -> str:
    """The pattern filled with every value escaped; {marks} takes our own `markup`."""
    # html.escape: the same five characters as markupsafe.escape, at a third of the cost.
    fields = {name: html.escape(value) for name, value in values.items()}
    fields["marks"] = markup
    return pattern.format_map(fields)


def overview_rows(
    latest, now: datetime, stale_after: timedelta, firing: set, tz: tzinfo
) -> Markup:
    """One <tr> per latest position: amount, price, notional, time, age and marks."""
    history_prefix = url_for("positions.history", asset="X")[:-1]
    alert_mark = ALERT_MARK.format(url_for("alerts.index"))
    rows = []
    for p in latest:
        age = now - p.timestamp
        stale = age > stale_after
        alerting = (p.account, p.asset) in firing or (p.account, "*") in firing
        amount, price, at_utc = exact(p.amount), exact(p.price), utc_iso(p.timestamp)
        rows.append(
            _row(
                OVERVIEW_ROW,
                {
                    "css": ("stale" if stale else "") + (" alerting" if alerting else ""),
                    "account": p.account,
                    "asset": p.asset,
                    # Read by live.js to tell which rows changed since the last refresh.
                    "live_values": f"{amount} {price} {at_utc} {stale} {alerting}",
                    "history_url": history_prefix + quote(p.asset, safe="/"),
                    "amount": amount,
                    "price": price,
                    "notional": exact(notional(p.amount, p.price)),
                    "at_utc": at_utc,
                    "at_local": time_in_zone(p.timestamp, tz),
                    "age": duration(age),
                },
                (STALE_MARK if stale else NO_MARKS) + (alert_mark if alerting else NO_MARKS),
            )
        )
    return Markup("".join(rows))  # noqa: S704 (every value escaped in _row)


def history_rows(snapshots, tz: tzinfo) -> Markup:
    """One <tr> per snapshot: time (UTC on hover), account, amount, price, notional."""
    rows = []
    for p in snapshots:
        at_utc = utc_iso(p.timestamp)
        rows.append(
            _row(
                HISTORY_ROW,
                {
                    "at_utc": at_utc,
                    "at_local": time_in_zone(p.timestamp, tz),
                    "account": p.account,
                    "amount": exact(p.amount),
                    "price": exact(p.price),
                    "notional": exact(notional(p.amount, p.price)),
                },
            )
        )
    return Markup("".join(rows))  # noqa: S704 (every value escaped in _row)
