"""A history page's body: a fragment (app.fragments) of what it shows."""

from datetime import tzinfo
from typing import NamedTuple

from flask import request
from markupsafe import Markup

from app.alerts.queries import AssetAlert
from app.fragments import Fragment
from app.positions.queries import HistoryPage
from app.templating import exact, time_in_zone, utc_iso

HISTORY_TEMPLATE = "positions/_history.html"


class AlertLine(NamedTuple):
    """An alert of the asset as the page words it."""

    state: str
    rule_name: str
    account: str
    value: str
    since_utc: str
    since_local: str


class HistoryState(NamedTuple):
    """Everything the body shows but its table rows."""

    script_root: str
    asset: str
    account: str | None
    accounts: tuple[str, ...]
    filter_items: tuple[tuple[str, str], ...]  # account, from, to, range as given
    alerts: tuple[AlertLine, ...]
    timezone: str  # the zone every time on the page is shown and read in
    is_first_page: bool
    next_cursor: str | None
    has_rows: bool


def history_body(
    asset: str,
    *,
    account: str | None,
    accounts: list[str],
    filters: dict[str, str],
    alerts: list[AssetAlert],
    page: HistoryPage,
    is_first_page: bool,
    rows: Markup,
    tz: tzinfo,
) -> Fragment:
    """The body of one history page, its rows put in the rendered rest."""
    lines = tuple(
        AlertLine(
            a.state,
            a.rule_name,
            a.account,
            exact(a.value),
            utc_iso(a.state_since),
            time_in_zone(a.state_since, tz),
        )
        for a in alerts
    )
    state = HistoryState(
        request.script_root,
        asset,
        account,
        tuple(accounts),
        tuple(sorted(filters.items())),
        lines,
        tz.key,
        is_first_page,
        page.next_cursor.encode() if page.next_cursor else None,
        bool(page.rows),
    )
    return Fragment(HISTORY_TEMPLATE, state, rows=rows)
