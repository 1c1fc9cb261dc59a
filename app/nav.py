"""The navigation bar: a fragment (app.fragments) of what it shows."""

from typing import NamedTuple

from app.fragments import Fragment

NAV_TEMPLATE = "_nav.html"


class NavState(NamedTuple):
    """Everything the bar shows; the user's fields are None when no one is logged in."""

    script_root: str
    username: str | None = None
    role: str | None = None
    is_admin: bool = False
    timezone: str | None = None
    csrf: str | None = None
    firing_alerts: int = 0
    show_utc: bool = False
    display_timezone: str | None = None


def nav_bar(state: NavState, return_path: str = "") -> Fragment:
    """The bar for `state`; its UTC toggle returns to `return_path`, the page's own."""
    return Fragment(NAV_TEMPLATE, state, return_path=return_path)
