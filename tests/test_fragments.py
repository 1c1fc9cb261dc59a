"""Fragments: rendered from their state alone, reused while it is the same."""

from typing import NamedTuple

import pytest
from jinja2 import UndefinedError
from markupsafe import Markup

from app.fragments import Fragment, FragmentRenderer
from tests.conftest import build_app


class Greeting(NamedTuple):
    script_root: str
    name: str


def test_a_fragment_template_can_read_nothing_but_its_state(app):
    environment = app.extensions["fragments"].environment
    with app.test_request_context("/"):
        for name in ("request.path", "current_user.username", "session", "config", "g"):
            with pytest.raises(UndefinedError):
                environment.from_string(f"{{{{ {name} }}}}").render()


def test_slots_are_filled_for_each_page_escaped_unless_markup(app, monkeypatch):
    renderer = app.extensions["fragments"]
    monkeypatch.setattr(
        renderer.environment.loader,
        "get_source",
        lambda env, name: ("<p>{{ name }}: {{ text }} {{ html }}</p>", None, lambda: True),
    )
    state = Greeting("", "<Ann>")
    with app.test_request_context("/"):
        first = str(Fragment("greeting", state, text="a<b", html=Markup("<i>x</i>")))
        second = str(Fragment("greeting", state, text="c&d", html=Markup("<b>y</b>")))
    assert first == "<p>&lt;Ann&gt;: a&lt;b <i>x</i></p>"
    assert second == "<p>&lt;Ann&gt;: c&amp;d <b>y</b></p>"


def test_with_template_reloading_every_fragment_is_rendered_for_every_page(sqlite_url):
    assert FragmentRenderer(build_app(sqlite_url, TEMPLATES_AUTO_RELOAD=True)).remember is False
    assert FragmentRenderer(build_app(sqlite_url)).remember is True
