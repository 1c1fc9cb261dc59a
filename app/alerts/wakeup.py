"""Waking the worker when the outbox gets a message, so delivery does not wait for a pass.

PostgreSQL: whoever queues a notification also sends NOTIFY in the same transaction, so
it reaches the worker's LISTEN connection when (and only if) the rows commit. SQLite
has no such signal: the worker polls the outbox with one indexed query a few times a
second. Either way, after every wait the worker asks the outbox whether anything is
due, which also catches retries whose backoff ran out and a NOTIFY lost to a reconnect.
"""

import logging
import select as selectors
import time
from contextlib import suppress
from datetime import datetime

from sqlalchemy import or_, select, text

from app.alerts.models import Notification, NotificationStatus
from app.db_types import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

CHANNEL = "tradingmonitor_outbox"
# On PostgreSQL the NOTIFY wakes the worker; this poll is only its safety net.
POSTGRES_POLL_SECONDS = 1.0


def is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def announce() -> None:
    """Tell listening workers, on commit, that the outbox has new rows (PostgreSQL only)."""
    if is_postgres():
        # Identical notifications of one transaction are folded into one by PostgreSQL.
        db.session.execute(text(f"NOTIFY {CHANNEL}"))


def outbox_due(now: datetime | None = None) -> bool:
    """Whether some pending notification is due and unclaimed (one row from an index)."""
    now = now or utcnow()
    query = (
        select(Notification.id)
        .where(
            Notification.status == NotificationStatus.PENDING,
            Notification.next_attempt_at <= now,
            or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
        )
        .limit(1)
    )
    found = db.session.execute(query).first() is not None
    db.session.commit()
    return found


class Listener:
    """A dedicated LISTEN connection on PostgreSQL; on SQLite, a short sleep.

    `wait(timeout)` returns when a NOTIFY arrived or the poll period passed, whichever is
    first; it never raises for a lost connection (it reconnects at the next wait).
    """

    def __init__(self, sqlite_poll_seconds: float):
        self.sqlite_poll = sqlite_poll_seconds
        self.postgres = db.engine.dialect.name == "postgresql"
        self.connection = None

    def poll_seconds(self) -> float:
        return POSTGRES_POLL_SECONDS if self.postgres else self.sqlite_poll

    def _connect(self):
        import psycopg

        args, params = db.engine.dialect.create_connect_args(db.engine.url)
        params = {**params, "autocommit": True, "connect_timeout": 5}
        connection = psycopg.connect(*args, **params)
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def fileno(self) -> int | None:
        """The socket to wait on, connecting first if needed; None while unreachable."""
        if not self.postgres:
            return None
        if self.connection is None:
            try:
                self.connection = self._connect()
            except Exception as exc:
                log.debug("LISTEN connection unavailable: %s", exc)
                return None
        return self.connection.fileno()

    def wait(self, timeout: float, sleep) -> None:
        """Wait up to `timeout` for a NOTIFY; `sleep` is the worker's interruptible sleep."""
        fileno = self.fileno()
        if fileno is None:
            sleep(timeout)
            return
        sleep(timeout, fileno)
        self.drain()

    def drain(self) -> None:
        """Read the notifications that arrived (their content does not matter)."""
        try:
            for _ in self.connection.notifies(timeout=0):
                pass
        except Exception as exc:
            log.debug("LISTEN connection lost: %s", exc)
            self.close()

    def close(self) -> None:
        if self.connection is not None:
            with suppress(Exception):
                self.connection.close()
            self.connection = None


def wait_readable(fileno: int | None, timeout: float) -> None:
    """Sleep `timeout` seconds, or less if `fileno` becomes readable."""
    if fileno is None:
        time.sleep(timeout)
    else:
        selectors.select([fileno], [], [], timeout)
