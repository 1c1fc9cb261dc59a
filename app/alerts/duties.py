"""What the worker does between evaluation passes, each on its own clock.

- deliver new notifications as soon as the outbox has them (app.alerts.wakeup), with
  the group flushes and escalation steps that fell due (app.alerts.oncall);
- re-send firing alerts to Alertmanager channels every ALERTMANAGER_RESEND_SECONDS;
- beat the dead man's switch every DEADMAN_INTERVAL_SECONDS (app.alerts.deadman).

Stale feeds, pending periods and reminders stay with the pass and its interval.
"""

import logging
import time
from contextlib import suppress

import click
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from app.alerts import alertmanager
from app.alerts.deadman import DeadMansSwitch
from app.alerts.delivery import DeliveryError, deliver_due, post_json
from app.alerts.models import new_idempotency_key
from app.alerts.oncall import on_call_pass
from app.alerts.wakeup import Listener, outbox_due
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)


class Every:
    """A clock for one duty: due at once, then every `seconds` (never when 0 or None)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds or 0
        self.next = time.monotonic()

    def due(self, now: float) -> bool:
        return bool(self.seconds) and now >= self.next

    def done(self, now: float) -> None:
        self.next = now + self.seconds

    def wait(self, now: float) -> float:
        return max(0.0, self.next - now) if self.seconds else float("inf")


def resend_to_alertmanagers() -> int:
    """Re-post every firing alert to each Alertmanager channel; return alerts re-sent."""
    resent = 0
    now = utcnow()
    for channel in alertmanager.resend_targets():
        body = alertmanager.firing_to_resend(channel, now)
        db.session.commit()
        if not body:
            continue
        try:
            post_json(alertmanager.api_url(channel.target), body, new_idempotency_key())
            resent += len(body)
        except DeliveryError as exc:
            # The next re-send, or the outbox's own retries, try again.
            log.warning("re-send to Alertmanager channel %s failed: %s", channel.id, exc)
    return resent


class Duties:
    """The worker's between-pass duties; `idle` runs them while it waits for the next pass."""

    def __init__(self, worker: str, interval: float):
        cfg = current_app.config
        self.listener = Listener(cfg["OUTBOX_POLL_SECONDS"])
        self.resend = Every(cfg["ALERTMANAGER_RESEND_SECONDS"])
        url = cfg.get("DEADMAN_URL")
        self.deadman = DeadMansSwitch(url, worker, interval) if url else None
        self.beat = Every(cfg["DEADMAN_INTERVAL_SECONDS"] if url else 0)
        # Off after a failed pass: the database is likely away and the pass's retry
        # decides when it is back; only the dead man's switch keeps its clock.
        self.database_ok = False

    def pass_succeeded(self) -> None:
        self.database_ok = True
        if self.deadman:
            self.deadman.pass_succeeded()

    def pass_failed(self, reason: str) -> None:
        self.database_ok = False
        if self.deadman:
            self.deadman.pass_failed(reason)

    def idle(self, stop, seconds: float) -> None:
        """Wait `seconds` for the next pass, doing each duty when it is due."""
        deadline = time.monotonic() + seconds
        while True:
            self._periodic()
            now = time.monotonic()
            if now >= deadline:
                return
            step = min(deadline - now, self.beat.wait(now), self.listener.poll_seconds())
            if self.database_ok:
                step = min(step, self.resend.wait(now))
                self.listener.wait(step, stop.sleep)
                self._guarded(self._deliver_new)
            else:
                stop.sleep(step)

    def _periodic(self) -> None:
        now = time.monotonic()
        if self.deadman and self.beat.due(now):
            self.beat.done(now)
            self._guarded(self.deadman.beat)
        if self.database_ok and self.resend.due(now):
            self.resend.done(now)
            self._guarded(resend_to_alertmanagers)

    def _deliver_new(self) -> None:
        # Group flushes and escalation steps fall due between passes too (group wait is
        # seconds); what they queue is delivered in the same round.
        on_call_pass(utcnow())
        db.session.commit()
        if not outbox_due():
            return
        sent, failed = deliver_due()
        if sent or failed:
            click.echo(f"delivered between passes: sent {sent}, failed {failed}")

    def _guarded(self, duty) -> None:
        """Run one duty; a failure is logged and left to the next pass, never raised."""
        try:
            duty()
        except Exception as exc:
            if isinstance(exc, SQLAlchemyError):
                log.warning("worker duty %s: database error (%s)", duty.__name__, exc)
                self.database_ok = False
            else:
                log.exception("worker duty %s failed", duty.__name__)
            with suppress(SQLAlchemyError):
                db.session.rollback()
        finally:
            db.session.remove()

    def close(self) -> None:
        self.listener.close()
