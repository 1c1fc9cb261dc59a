"""Security headers on every response, pages, JSON and errors alike."""

from flask import Flask

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


class SecurityHeaders:
    """WSGI middleware: the same headers on every response the app starts.

    It sits below Flask, so no response leaves without them, whichever way the app
    made it; and a fixed list added as the response starts costs a fraction of
    setting each header on Flask's response object, on every request.
    """

    def __init__(self, wsgi_app, *, hsts_seconds: int, static_path: str):
        self.wsgi_app = wsgi_app
        self.headers = [
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ]
        if hsts_seconds:
            self.headers.append(
                ("Strict-Transport-Security", f"max-age={hsts_seconds}; includeSubDomains")
            )
        # Ours win over the app's; no version banner leaves.
        self.replaced = {name.lower() for name, _ in self.headers} | {"server"}
        self.static_prefix = static_path.rstrip("/") + "/"

    def __call__(self, environ, start_response):
        # Positions and sessions are private: never kept in a shared cache, unless
        # the response says how to cache itself (static files do).
        private = not environ.get("PATH_INFO", "").startswith(self.static_prefix)

        def start_with_headers(status, headers, exc_info=None):
            kept = [(name, value) for name, value in headers if name.lower() not in self.replaced]
            if private and not any(name.lower() == "cache-control" for name, _ in kept):
                kept.append(("Cache-Control", "no-store"))
            kept.extend(self.headers)
            return start_response(status, kept, exc_info)

        return self.wsgi_app(environ, start_with_headers)


def register_security_headers(app: Flask) -> None:
    app.wsgi_app = SecurityHeaders(
        app.wsgi_app,
        hsts_seconds=app.config["HSTS_SECONDS"],
        static_path=app.static_url_path,
    )
