"""Security headers on every response, pages, JSON and errors alike."""

from flask import Flask, current_app, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def set_security_headers(response):
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    hsts = current_app.config["HSTS_SECONDS"]
    if hsts:
        headers["Strict-Transport-Security"] = f"max-age={hsts}; includeSubDomains"
    if request.endpoint != "static":
        # Positions and sessions are private: never keep them in a shared cache.
        headers.setdefault("Cache-Control", "no-store")
    headers.pop("Server", None)
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(set_security_headers)
