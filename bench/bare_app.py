"""The reference for bench/pages.py: Flask, one route, a small constant HTML page.

Served exactly like the real app (gunicorn, same workers), it measures what the
server, the load generator and Flask's request cycle cost on this machine, so the
pages' numbers can be read as a ratio rather than as absolute figures.

    .venv/bin/gunicorn -w 2 -b 127.0.0.1:8001 --chdir bench bare_app:app
"""

from flask import Flask

PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    "<title>bare</title></head><body><p>Hello from the bare reference app.</p>"
    "</body></html>\n"
)

app = Flask(__name__)


@app.route("/")
def index():
    return PAGE
