"""Ops room: health checks, error pages, security headers, logging."""
