"""Logging: one line per event, whatever the input contained."""

import logging

from flask import Flask

# Newlines would let input forge extra log lines; escapes would drive the terminal.
_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0, 32), 127)}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


class SingleLineFormatter(logging.Formatter):
    """Escape control characters in the message; keep tracebacks as they are."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_ESCAPES)


def configure_logging(app: Flask) -> None:
    """Send the app's logs to stderr as single lines, unless the host configured logging."""
    package_logger = logging.getLogger("app")
    if package_logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(SingleLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger.addHandler(handler)
    package_logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
