"""WSGI entry point for gunicorn: `gunicorn wsgi:app` (production config by default)."""

import os

from app import create_app

os.environ.setdefault("TRADINGMONITOR_CONFIG", "production")
app = create_app()
