"""Flask's signed cookie session, verifying each distinct cookie once per process."""

import time

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

# Values a remembered session may hold: immutable, so every request's copy of the
# session is independent of the others. A session holding anything else (flashed
# messages are a list that `flash` appends to in place) is decoded every time.
_IMMUTABLE = (str, int, float, bool, type(None))
VERIFIED_COOKIES_SIZE = 4096


class VerifiedCookieSessionInterface(SecureCookieSessionInterface):
    """The signed cookie session, remembering the cookies whose signature it checked.

    A browser sends the same cookie on every request until its session changes, and
    checking the signature and decoding the payload is a tenth of a page's work. A
    cookie is remembered under the secret that verified it, with the time it was
    signed, so its age is still checked against the session lifetime on every request,
    and each request gets its own copy of the values. The server-side session check
    (`app.auth.sessions`) runs on every request as before.
    """

    def __init__(self) -> None:
        self._verified: dict[tuple[str, str], tuple[dict, int]] = {}
        self._serializer: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        # Built once per set of keys: building one costs about as much as checking a
        # cookie, and it keeps no state between calls.
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._serializer is None or self._serializer[0] != keys:
            self._serializer = (keys, super().get_signing_serializer(app))
        return self._serializer[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        key = (app.secret_key, cookie)
        known = self._verified.get(key)
        if known is not None:
            values, signed_at = known
            if 0 <= int(time.time()) - signed_at <= max_age:
                return self.session_class(values)
        try:
            values, signed = serializer.loads(cookie, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if isinstance(values, dict) and all(type(v) in _IMMUTABLE for v in values.values()):
            if len(self._verified) >= VERIFIED_COOKIES_SIZE:
                self._verified.clear()
            self._verified[key] = (dict(values), int(signed.timestamp()))
        return self.session_class(values)
