"""Fixed reads that every page runs, executed on the driver's cursor.

SQLAlchemy's execute path costs about 80 µs a statement on top of what SQLite
itself spends on a one-row read (bench/pages.py --profile), and every page runs a
few fixed reads: the session check, the firing count, the page's own query. A
`DriverRead` compiles its Core statement once per dialect and runs it on a driver
cursor: in the session's transaction when the session has one, so a read sees what the
request wrote; otherwise on one pooled connection that the request keeps until it ends.
A page that only reads then never starts an ORM session, whose checkout, transaction
and close cost more than the page's reads. On SQLite that connection is the thread's
own, kept between requests (see `_thread`).

What it keeps from SQLAlchemy: the SQL and parameter style of each dialect, the
parameters' bind processors (a datetime is stored as the column type stores it), and
errors as SQLAlchemy's (`OperationalError` → 503), with a lost connection invalidated.
What it leaves out: result processing. Rows come back as the driver makes them (text
times and decimals on SQLite; datetimes and Decimals on PostgreSQL); the caller
finishes them, as positions.queries does for its rows.
"""

import threading
import weakref
from collections.abc import Callable
from typing import NamedTuple

from flask import g, has_request_context
from sqlalchemy import Select
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError

from app.extensions import db


class _Compiled(NamedTuple):
    sql: str
    defaults: dict  # every parameter, with the values bound in the statement
    processors: dict  # parameter name -> bind processor, for those that have one
    positions: tuple[str, ...] | None  # the order of a positional style's parameters


class DriverRead:
    """A Core SELECT run on the driver's cursor: `rows(**params)` → driver tuples."""

    def __init__(self, statement: Select):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if "POSTCOMPILE" in compiled.string:
                # An IN list is written out per execution by SQLAlchemy; spell it as
                # ORed equalities instead.
                raise ValueError("DriverRead takes no expanding (IN list) parameters")
            processors = {}
            for bind, name in compiled.bind_names.items():
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            positions = tuple(compiled.positiontup) if compiled.positional else None
            found = _Compiled(compiled.string, dict(compiled.params), processors, positions)
            self._compiled[dialect.name] = found
        return found

    def rows(self, **params) -> list[tuple]:
        """The rows for these parameters; names the statement does not use are ignored."""
        dbapi_connection, dialect, invalidate = _read_connection()
        compiled = self._compile(dialect)
        values = {name: params.get(name, value) for name, value in compiled.defaults.items()}
        for name, processor in compiled.processors.items():
            if values[name] is not None:
                values[name] = processor(values[name])
        if compiled.positions is not None:
            values = tuple(values[name] for name in compiled.positions)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(compiled.sql, values)
            return cursor.fetchall()
        except dialect.loaded_dbapi.Error as exc:
            lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
            if lost:
                invalidate(exc)
            raise DBAPIError.instance(
                compiled.sql,
                values,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()

    def first(self, **params) -> tuple | None:
        found = self.rows(**params)
        return found[0] if found else None


READ_CONNECTION_KEY = "driver_read_connection"
# On SQLite each thread keeps one read connection for as long as the engine lives: a
# file has no server that could drop it, and the driver starts no transaction for a
# SELECT, so an idle connection holds no snapshot and no lock. It is made by the pool
# (with the pool's connect settings) and detached from it. PostgreSQL's connections
# are checked out for one request, where the pool's pre-ping notices a restart.
_thread = threading.local()


def _read_connection() -> tuple[object, Dialect, Callable]:
    """The DBAPI connection to read on, its dialect, and how to invalidate it."""
    sessions = db.session.registry  # asked without making a session when there is none
    if not has_request_context() or (sessions.has() and sessions().in_transaction()):
        connection = db.session.connection()
        return connection.connection, connection.dialect, connection.invalidate
    engine = db.engine
    if engine.dialect.name == "sqlite":
        held = _thread_connection(engine)
    else:
        held = g.get(READ_CONNECTION_KEY)
        if held is None or not held[0].is_valid:
            if held is not None:
                held[0].close()
            held = (engine.raw_connection(), engine.dialect)
            setattr(g, READ_CONNECTION_KEY, held)
    connection, dialect = held
    return connection, dialect, connection.invalidate


def _thread_connection(engine: Engine) -> tuple:
    """This thread's SQLite read connection to `engine`, and its dialect."""
    held_by_engine = getattr(_thread, "connections", None)
    if held_by_engine is None:
        held_by_engine = _thread.connections = weakref.WeakKeyDictionary()
    held = held_by_engine.get(engine)
    if held is None or not held[0].is_valid:
        if held is not None:
            held[0].close()
        connection = engine.raw_connection()
        connection.detach()
        held = held_by_engine[engine] = (connection, engine.dialect)
    return held


def forget_thread_connection(engine: Engine) -> None:
    """engine_disposed: close this thread's SQLite read connection with the pool's."""
    held = getattr(_thread, "connections", {}).pop(engine, None)
    if held is not None:
        held[0].close()


def release_read_connection(_exc: BaseException | None = None) -> None:
    """teardown_request: give the request's read connection back to the pool."""
    held = g.pop(READ_CONNECTION_KEY, None)
    if held is not None:
        held[0].close()
