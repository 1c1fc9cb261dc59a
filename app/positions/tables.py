"""The overview's table rows, rendered to HTML (until the overview is a Jinja loop).

Safe by construction: names (account, asset) come from the trading system and are
escaped by `html.escape`. Every other value is text we made from a number or a
moment (`exact`, `utc_iso`, `time_in_zone`, `duration`), escaped as well where a
zone's abbreviation comes from the system's time zone files.
"""

import html
from datetime import datetime, timedelta, tzinfo
from urllib.parse import quote

from flask import url_for
from markupsafe import Markup

from app.positions.models import notional
from app.templating import duration, exact, time_in_zone, utc_iso

STALE_MARK = ' <span class="badge stale">stale</span>'
ALERT_MARK = ' <a class="badge firing" href="{}">alert</a>'


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
        rows.append(_overview_row(p, tz, age, stale, alerting, history_prefix, alert_mark))
    return Markup("".join(rows))  # noqa: S704 (names escaped, the rest made by us)


def _overview_row(
    p,
    tz: tzinfo,
    age: timedelta,
    stale: bool,
    alerting: bool,
    history_prefix: str,
    alert_mark: str,
) -> str:
    account, asset, at_utc = html.escape(p.account), html.escape(p.asset), utc_iso(p.timestamp)
    amount, price = exact(p.amount), exact(p.price)
    css = ("stale" if stale else "") + (" alerting" if alerting else "")
    marks = (STALE_MARK if stale else "") + (alert_mark if alerting else "")
    href = html.escape(history_prefix + quote(p.asset, safe="/"))
    return (
        f'<tr class="{css}" data-account="{account}" data-asset="{asset}"\n'
        f'  data-live-key="{account}/{asset}" '
        # Read by live.js to tell which rows changed since the last refresh.
        f'data-live-values="{amount} {price} {at_utc} {stale} {alerting}">\n'
        f'  <td><a href="{href}">{asset}</a></td>\n'
        f"  <td>{account}</td>\n"
        f'  <td class="num">{amount}</td>\n'
        f'  <td class="num">{price}</td>\n'
        f'  <td class="num">{exact(notional(p.amount, p.price))}</td>\n'
        f'  <td title="{at_utc}">{html.escape(time_in_zone(p.timestamp, tz))}</td>\n'
        f'  <td class="num">{duration(age)}{marks}</td>\n'
        '  <td class="spark"></td>\n'
        "</tr>\n"
    )
