"""Whether the API's rate-limit counters are shared by every worker and host."""

import logging

from flask import Flask

from app.extensions import limiter

log = logging.getLogger(__name__)


def unshared_counters(app: Flask) -> str | None:
    """Why the configured limits would not hold across workers, or None when they do."""
    uri = app.config["RATELIMIT_STORAGE_URI"]
    workers = int(app.config["WEB_WORKERS"])
    if uri.startswith("memory://") and workers > 1:
        return (
            f"API rate limits are counted per process: RATELIMIT_STORAGE_URI is {uri} with "
            f"{workers} workers, so each allows {app.config['API_RATE_LIMIT']} on its own; "
            "set TRADINGMONITOR_RATELIMIT_STORAGE_URI=redis://… to share them"
        )
    return None


def warn_if_unshared(app: Flask) -> None:
    """Log at start when the rate limits would not add up across workers."""
    if problem := unshared_counters(app):
        log.warning("%s", problem)


def status(app: Flask) -> tuple[bool, str]:
    """(ok, what /readyz says about the rate-limit counters)."""
    if problem := unshared_counters(app):
        return False, problem
    uri = app.config["RATELIMIT_STORAGE_URI"]
    scheme = uri.split(":", 1)[0]
    if scheme == "memory":
        return True, "in memory (one worker)"
    try:
        reachable = limiter.storage.check()
    except Exception:  # any client error means the same: counters unavailable
        reachable = False
    if not reachable:
        return False, f"{scheme} storage unreachable: limits fall back to per-process counters"
    return True, f"shared ({scheme})"
