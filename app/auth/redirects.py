"""Helpers for where a request may be sent next."""

from urllib.parse import urlsplit

from flask import request

MAX_NEXT_LENGTH = 2000


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, else None.

    Refuses anything with a scheme or host, scheme-relative `//host`, backslashes
    (browsers read `/\\host` as `//host`) and control characters.
    """
    if not target or len(target) > MAX_NEXT_LENGTH:
        return None
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def wants_json() -> bool:
    """True for API paths and clients that prefer JSON to HTML."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and "text/html" not in request.accept_mimetypes
