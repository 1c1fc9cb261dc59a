"""Versioned static URLs: `?v=<content hash>`, so nginx can let browsers cache a year."""

import hashlib
import os

from flask import current_app


def static_version(filename: str) -> str | None:
    """A short hash of the static file's content; recomputed when the file changes."""
    path = os.path.join(current_app.static_folder, filename)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    cache = current_app.extensions.setdefault("static_versions", {})
    known = cache.get(filename)
    if known is not None and known[0] == mtime:
        return known[1]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    cache[filename] = (mtime, digest)
    return digest


def add_static_version(endpoint: str, values: dict) -> None:
    """url_defaults hook: stamp every static URL with its content hash."""
    if endpoint == "static" and "v" not in values and "filename" in values:
        version = static_version(values["filename"])
        if version:
            values["v"] = version
