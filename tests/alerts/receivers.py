"""Real receivers on loopback: an HTTP server that records or refuses, an SMTP server."""

import json
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Records JSON bodies; answers `status` (500 to play a broken receiver).

    `received` holds the bodies it accepted, in arrival order; `attempts` every
    request, accepted or not, as (headers, body).
    """

    def __init__(self):
        self.received: list[dict] = []
        self.attempts: list[tuple[dict, dict]] = []
        self.status = 200
        self.delay = 0.0  # seconds to hold each request, to play a slow receiver
        # Set to an Event to hold every request until the test sets it.
        self.gate: threading.Event | None = None
        self.requests = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.requests += 1
                    receiver.attempts.append((dict(self.headers), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                with receiver.lock:
                    # Decided on the way out: a receiver that comes back up while a
                    # request is held accepts it, as a real one would.
                    status = receiver.status
                    if status == 200:
                        receiver.received.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class SmtpReceiver:
    """An SMTP server (aiosmtpd) on a free loopback port; `messages` are parsed e-mails."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        receiver = self

        class Keep:
            async def handle_DATA(self, server, session, envelope):
                receiver.recipients.append(list(envelope.rcpt_tos))
                receiver.messages.append(
                    message_from_bytes(envelope.original_content, policy=policy.default)
                )
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Keep(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
