"""The real app (`wsgi:app`) plus two reference pages for bench/pages.py.

They measure what every page of the app costs before its own content, so a page's
figure can be read against what no page can go below:

- `/bench/signed-in`: the session check and every hook a page runs, then a short
  text answer: no template.
- `/bench/layout`: the same, then base.html (navigation, firing count, worker
  state, CSRF token, static URLs) around an empty content block.

    .venv/bin/gunicorn -w 2 -b 127.0.0.1:8002 'bench.floor_app:wsgi_app_with_floor()'
"""

from flask import Flask, current_app, render_template

from app.auth.access import requires_role
from app.auth.models import Role

EMPTY_PAGE = (
    '{% extends "base.html" %}{% block title %}Layout{% endblock %}'
    '{% block content %}<p id="layout-only">Nothing but the layout.</p>{% endblock %}'
)


@requires_role(Role.VIEWER)
def signed_in():
    """A page with no content: what signing in and the request hooks cost."""
    return "signed in\n"


@requires_role(Role.VIEWER)
def layout():
    """The layout around an empty content block: the floor of every page."""
    return render_template(current_app.extensions["bench_floor_layout"])


def add_floor_pages(app: Flask) -> Flask:
    # Compiled once, as Flask compiles a template file once.
    app.extensions["bench_floor_layout"] = app.jinja_env.from_string(EMPTY_PAGE)
    app.add_url_rule("/bench/signed-in", view_func=signed_in)
    app.add_url_rule("/bench/layout", view_func=layout)
    return app


def wsgi_app_with_floor() -> Flask:
    """gunicorn's target: the app exactly as `wsgi:app` serves it, plus the two pages."""
    from wsgi import app

    return add_floor_pages(app)
