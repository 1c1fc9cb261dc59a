"""Parts of pages rendered once for each combination of the values they show.

The navigation bar is the same on every page a viewer opens, and a history page's
controls (chart ranges, filters, pager) are the same on every visit to the same
page; rendering them is most of a page's template work. A fragment is a template
rendered from one state, a NamedTuple holding every value it shows, and the result
is kept under that state and reused while the same state comes back.

What keeps that honest: fragment templates are rendered in an environment of their
own that holds `url_for` and Jinja's own globals and nothing else, with undefined
names an error, so a fragment can use only the values of its state. Its URLs depend
on the script root, which every state carries. Values that differ on every visit
without changing the rest (a page's own path, its table rows) are slots: rendered as
markers, and put in, escaped unless Markup, for each page. With template auto-reload
on (development), every fragment is rendered for every page.
"""

import re
from typing import NamedTuple

from flask import Flask, current_app
from jinja2 import Environment, StrictUndefined
from markupsafe import escape

FRAGMENT_CACHE_SIZE = 2048
# A slot's marker: characters that escaping leaves alone and no template writes.
_SLOT = re.compile("\x00([a-z_]+)\x00")


class Fragment:
    """What a page prints: one template, its state and the values of its slots."""

    __slots__ = ("slots", "state", "template")

    def __init__(self, template: str, state: NamedTuple, **slots):
        self.template = template
        self.state = state
        self.slots = slots

    def __html__(self) -> str:
        parts = current_app.extensions["fragments"].parts(self.template, self.state, self.slots)
        # Even places hold rendered text, odd places the name of a slot.
        return "".join(
            part if i % 2 == 0 else str(escape(self.slots[part])) for i, part in enumerate(parts)
        )

    def __str__(self) -> str:
        return self.__html__()


class FragmentRenderer:
    """Renders fragment templates from their states alone, remembering each result."""

    def __init__(self, app: Flask):
        self.environment = Environment(
            loader=app.jinja_loader,
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=app.jinja_env.auto_reload,
        )
        self.environment.globals["url_for"] = app.jinja_env.globals["url_for"]
        self.remember = not app.jinja_env.auto_reload
        self._parts: dict[tuple[str, NamedTuple], list[str]] = {}

    def parts(self, template: str, state: NamedTuple, slots: dict) -> list[str]:
        key = (template, state)
        found = self._parts.get(key)
        if found is None:
            markers = {name: f"\x00{name}\x00" for name in slots}
            html = self.environment.get_template(template).render(**state._asdict(), **markers)
            found = _SLOT.split(html)
            if self.remember:
                if len(self._parts) >= FRAGMENT_CACHE_SIZE:
                    self._parts.clear()
                self._parts[key] = found
        return found


def register_fragments(app: Flask) -> None:
    app.extensions["fragments"] = FragmentRenderer(app)
