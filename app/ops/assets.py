"""Versioned static URLs: `?v=<content hash>`, so nginx can let browsers cache a year."""

import hashlib
import os
import time
from collections.abc import Callable

from flask import current_app
from markupsafe import Markup, escape

# A page writes several static URLs: look at each file on disk at most this often.
RECHECK_SECONDS = 2.0


def static_version(filename: str) -> str | None:
    """A short hash of the static file's content; recomputed when the file changes."""
    cache = current_app.extensions.setdefault("static_versions", {})
    known = cache.get(filename)
    now = time.monotonic()
    if known is not None and now - known[0] < RECHECK_SECONDS:
        return known[2]
    path = os.path.join(current_app.static_folder, filename)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    if known is not None and known[1] == mtime:
        digest = known[2]
    else:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
    cache[filename] = (now, mtime, digest)
    return digest


def add_static_version(endpoint: str, values: dict) -> None:
    """url_defaults hook: stamp every static URL with its content hash."""
    if endpoint == "static" and "v" not in values and "filename" in values:
        version = static_version(values["filename"])
        if version:
            values["v"] = version


class StaticURLs:
    """`static['css/app.css']` in a template: the file's versioned URL, escaped."""

    def __init__(self, build: Callable[..., str]):
        self._build = build

    def __getitem__(self, filename: str) -> Markup:
        return escape(self._build("static", filename=filename))
