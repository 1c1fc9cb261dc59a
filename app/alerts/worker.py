"""The alert worker's loop: a pass every interval, outliving database outages and bugs.

Between passes the worker is not idle: it delivers new notifications as soon as the
outbox has them (app.alerts.wakeup), re-sends firing alerts to Alertmanager and beats
the dead man's switch, each on its own clock (app.alerts.duties).
"""

import logging
import signal
import time
from contextlib import suppress
from dataclasses import dataclass

import click
from sqlalchemy.exc import InterfaceError, SQLAlchemyError

from app.alerts.delivery import deliver_due
from app.alerts.digest import send_due_digests
from app.alerts.duties import Duties
from app.alerts.engine import evaluate_all
from app.alerts.heartbeat import beat, worker_name
from app.alerts.oncall import on_call_pass
from app.alerts.wakeup import wait_readable
from app.db_types import utcnow
from app.extensions import db
from app.ops.errors import is_database_unavailable
from app.positions.partitions import keep_ahead as keep_partitions_ahead
from app.positions.rollup import catch_up

log = logging.getLogger(__name__)

# Snapshots folded into the hourly rollups per pass, in short transactions.
ROLLUP_ROWS_PER_PASS = 50_000
# After a failed pass the worker waits this long, doubling per failure up to the cap:
# a database coming back is noticed within seconds, a long outage costs a line a half-minute.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


class WorkerStopped(BaseException):
    """Stop now: not an Exception, so the loop's retry never catches it."""


class StopSignal:
    """SIGTERM or Ctrl-C: stop after the pass in progress; a second one stops at once.

    Raising inside a pass could cut a database call short and hang the cleanup, so a
    first signal only interrupts a pause between passes.
    """

    def __init__(self):
        self.requested = False
        self.sleeping = False

    def __call__(self, signum, frame):
        if self.requested or self.sleeping:
            raise WorkerStopped
        self.requested = True

    def sleep(self, seconds: float, fileno: int | None = None) -> None:
        """Pause `seconds`, or less when `fileno` (a LISTEN connection) has news."""
        self.sleeping = True
        try:
            # Checked after `sleeping` is set: a signal in between is not slept through.
            if self.requested:
                raise WorkerStopped
            wait_readable(fileno, seconds)
        finally:
            self.sleeping = False


@dataclass(frozen=True)
class PassResult:
    transitions: int
    sent: int
    failed: int


def run_pass(worker: str, *, interval: float, started_at, passes: int) -> PassResult:
    """Evaluate every rule, deliver what is due, keep rollups current, record a heartbeat."""
    transitions = evaluate_all()
    db.session.commit()
    on_call_pass(utcnow())  # escalation steps and grouped messages now due
    sent, failed = deliver_due()
    # Users' daily digests that are due (each at its user's local time, once a day).
    send_due_digests(utcnow())
    # Keeps the chart's hourly rollups current; bounded so a backlog spreads over passes.
    catch_up(max_rows=ROLLUP_ROWS_PER_PASS)
    # PostgreSQL: the history's partitions for the periods ahead (looked at hourly).
    keep_partitions_ahead(utcnow())
    beat(worker, interval=interval, started_at=started_at, passes=passes)
    db.session.commit()
    return PassResult(len(transitions), sent, failed)


def retry_delay(failures: int) -> float:
    """Seconds to wait after the n-th failed pass in a row."""
    return min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (failures - 1))


def database_unreachable(error: BaseException) -> bool:
    """An outage to wait out (refused, lost or locked), not a bug."""
    return isinstance(error, InterfaceError) or is_database_unavailable(error)


def _reason(error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


def _drop_connections(dispose: bool) -> None:
    """Forget the failed transaction; after an outage, every pooled connection too."""
    # On a lost connection the rollback itself may fail; remove() discards it anyway.
    with suppress(SQLAlchemyError):
        db.session.rollback()
    db.session.remove()
    if dispose:
        db.engine.dispose()


def run_worker(interval: float, passes: int | None) -> None:
    """Pass every `interval` seconds until `passes` succeeded, Ctrl-C or SIGTERM."""
    stop = StopSignal()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _loop(interval, passes, stop)
    except WorkerStopped:
        pass  # the process ends; the database rolls back whatever was open
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("alert worker stopped")


def _loop(interval: float, passes: int | None, stop: StopSignal) -> None:
    done = failures = 0
    outage = False
    worker, worker_started = worker_name(), utcnow()
    duties = Duties(worker, interval)
    try:
        while not stop.requested and (passes is None or done < passes):
            started = time.monotonic()
            try:
                result = run_pass(
                    worker, interval=interval, started_at=worker_started, passes=done + 1
                )
            except Exception as exc:
                # A monitor that exits is worse than one that retries: no failure ends the loop.
                failures += 1
                delay = retry_delay(failures)
                outage = database_unreachable(exc)
                if outage:
                    log.warning("database unavailable, retrying in %gs (%s)", delay, _reason(exc))
                else:
                    log.exception("alert worker pass failed, retrying in %gs", delay)
                _drop_connections(dispose=outage)
                duties.pass_failed(_reason(exc))
                duties.idle(stop, delay)
                continue
            finally:
                db.session.remove()
            if outage:
                log.warning(
                    "database available again after %d failed pass(es); resuming", failures
                )
            failures, outage = 0, False
            done += 1
            duties.pass_succeeded()
            if result.transitions or result.sent or result.failed:
                click.echo(
                    f"pass {done}: {result.transitions} transition(s), "
                    f"sent {result.sent}, failed {result.failed}"
                )
            if done == passes:
                break
            # Always pause a little: back-to-back passes would starve ingest of SQLite's lock.
            duties.idle(stop, max(interval / 2, interval - (time.monotonic() - started)))
    finally:
        duties.close()
