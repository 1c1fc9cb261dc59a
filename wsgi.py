"""WSGI entry point for gunicorn: `gunicorn wsgi:app` (production config by default)."""

import gc
import os

from app import create_app

os.environ.setdefault("TRADINGMONITOR_CONFIG", "production")
app = create_app()

# Everything loaded so far lives as long as the worker: keep the garbage collector
# from walking it on every full collection (those pauses were the history page's p99).
gc.collect()
gc.freeze()
