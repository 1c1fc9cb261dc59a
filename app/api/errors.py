"""JSON errors of the API."""

from flask import jsonify


class ApiError(Exception):
    """An error answered as JSON with a status, a code and a message."""

    def __init__(self, status: int, error: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.extra = extra

    def response(self):
        body = {"error": self.error, "message": self.message, **self.extra}
        return jsonify(body), self.status
