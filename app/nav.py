"""The layout's navigation bar, rendered once for each combination of what it shows.

Every page carries the same bar for the same viewer: their name, role and zone, the
firing count, the UTC toggle and the session's CSRF token. Rendering it is about a
sixth of a page's template work, so each rendering is kept under the values it was
made from (`NavState`) and reused by the next page showing the same ones.

What keeps that honest: `_nav.html` is rendered in an environment of its own that
holds `url_for` and nothing else, with undefined names an error, so it can use only
the values of its state (its URLs depend on the script root, which is part of the
state). The one value that differs from page to page, the path the UTC toggle
returns to, is rendered as a marker and put in for each page. With template
auto-reload on (development), the bar is rendered on every page.
"""

from typing import NamedTuple

from flask import Flask, current_app
from jinja2 import Environment, StrictUndefined
from markupsafe import escape

NAV_TEMPLATE = "_nav.html"
NAV_CACHE_SIZE = 1024
# Where the UTC toggle's return path goes; markupsafe leaves it as it is.
_PATH_MARK = "\x00"


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


class Nav:
    """The bar of one page: its state and the path its UTC toggle returns to."""

    __slots__ = ("return_path", "state")

    def __init__(self, state: NavState, return_path: str = ""):
        self.state = state
        self.return_path = return_path

    def __html__(self) -> str:
        nav = current_app.extensions["nav"]
        parts = nav.parts(self.state)
        return str(escape(self.return_path)).join(parts)

    def __str__(self) -> str:
        return self.__html__()


class NavRenderer:
    """Renders `_nav.html` for a state, remembering the result unless templates reload."""

    def __init__(self, app: Flask):
        self.environment = Environment(
            loader=app.jinja_loader,
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=app.jinja_env.auto_reload,
        )
        self.environment.globals["url_for"] = app.jinja_env.globals["url_for"]
        self.remember = not app.jinja_env.auto_reload
        self._parts: dict[NavState, tuple[str, ...]] = {}

    def parts(self, state: NavState) -> tuple[str, ...]:
        found = self._parts.get(state)
        if found is None:
            template = self.environment.get_template(NAV_TEMPLATE)
            html = template.render(**state._asdict(), return_path=_PATH_MARK)
            found = tuple(html.split(_PATH_MARK))
            if self.remember:
                if len(self._parts) >= NAV_CACHE_SIZE:
                    self._parts.clear()
                self._parts[state] = found
        return found


def register_nav(app: Flask) -> None:
    app.extensions["nav"] = NavRenderer(app)
