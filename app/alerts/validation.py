"""Checks on what people type into channels."""

import re
from urllib.parse import urlsplit

from app.alerts.models import ChannelKind

EMAIL = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def target_problem(kind: str, target: str) -> str | None:
    """What is wrong with a channel target, or None."""
    target = target.strip()
    if not target or len(target) > 500:
        return "The target must be 1 to 500 characters."
    if kind == ChannelKind.EMAIL:
        return None if EMAIL.match(target) else f"{target[:80]!r} is not an e-mail address."
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The URL must start with http:// or https:// and name a host."
    return None
