"""Fixed reads on the driver's cursor: the same rows as SQLAlchemy, its errors, its transaction."""

import sqlite3
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import g
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError

from app.db_reads import READ_CONNECTION_KEY, DriverRead, _read_connection
from app.db_types import driver_decimal, driver_utc
from app.extensions import db
from app.positions.models import Position
from tests.positions.helpers import T0, snap, store

_position = Position.__table__.c
WINDOW = DriverRead(
    select(_position.account, _position.timestamp, _position.amount)
    .where(
        _position.asset == bindparam("asset"),
        _position.timestamp >= bindparam("start"),
        _position.timestamp < bindparam("end"),
    )
    .order_by(_position.timestamp, _position.account)
)


def btc_day(start=T0):
    return WINDOW.rows(asset="BTC", start=start, end=start + timedelta(1))


def checked_out(app) -> int:
    with app.app_context():
        return db.engine.pool.checkedout()


def test_rows_match_sqlalchemys_with_datetimes_bound_as_the_column_stores_them(any_app):
    store(
        any_app,
        [snap(account=a, minutes=m, amount=f"{m}.10") for m in range(5) for a in ("x", "y")]
        + [snap(asset="ETH", minutes=2)],
    )
    # Bounds in another zone: only the column type's processing makes them UTC text.
    tokyo = ZoneInfo("Asia/Tokyo")
    start, end = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
    params = {"asset": "BTC", "start": start.astimezone(tokyo), "end": end.astimezone(tokyo)}
    with any_app.app_context():
        expected = db.session.execute(
            select(Position.account, Position.timestamp, Position.amount)
            .where(
                Position.asset == params["asset"],
                Position.timestamp >= params["start"],
                Position.timestamp < params["end"],
            )
            .order_by(Position.timestamp, Position.account)
        ).all()
        got = [
            (account, driver_utc(at), driver_decimal(amount))
            for account, at, amount in WINDOW.rows(**params)
        ]
    assert got == [tuple(row) for row in expected]
    assert [str(amount) for _, _, amount in got] == ["1.10", "1.10", "2.10", "2.10"]


def test_reads_inside_the_sessions_own_transaction(any_app):
    with any_app.app_context():
        db.session.add(
            Position(account="x", asset="BTC", timestamp=T0, amount=snap().amount, price=None)
        )
        db.session.flush()  # not committed: only this transaction can see it
        assert len(WINDOW.rows(asset="BTC", start=T0, end=T0 + timedelta(1))) == 1
        db.session.rollback()
        assert WINDOW.rows(asset="BTC", start=T0, end=T0 + timedelta(1)) == []


def test_a_database_error_is_sqlalchemys_and_the_session_recovers(any_app):
    broken = DriverRead(select(_position.id).where(_position.asset == bindparam("asset")))
    with any_app.app_context():
        with db.engine.begin() as connection:
            connection.execute(db.text("ALTER TABLE position RENAME TO position_gone"))
        try:
            with pytest.raises(DBAPIError):
                broken.rows(asset="BTC")
            db.session.rollback()
        finally:
            with db.engine.begin() as connection:
                connection.execute(db.text("ALTER TABLE position_gone RENAME TO position"))
        assert broken.rows(asset="BTC") == []


def test_an_in_list_is_refused_when_first_used(app):
    in_list = DriverRead(select(_position.id).where(_position.asset.in_(["BTC", "ETH"])))
    with app.app_context(), pytest.raises(ValueError, match="IN list"):
        in_list.rows()


def test_a_request_that_only_reads_starts_no_session_and_leaves_the_pool_as_it_was(any_app):
    store(any_app, [snap()])
    with any_app.test_request_context():
        assert len(btc_day()) == 1
        assert len(btc_day()) == 1
        assert not db.session().in_transaction()
    assert checked_out(any_app) == 0


def read_connection_of_a_request(app):
    """The DBAPI connection a request read on, and the pool's checked-out count then."""
    with app.test_request_context():
        btc_day()
        connection = _read_connection()[0].dbapi_connection
        return connection, db.engine.pool.checkedout()


def test_postgresql_reads_check_out_one_connection_per_request(any_app):
    if any_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite reads on its thread's own connection (next test)")
    assert read_connection_of_a_request(any_app)[1] == 1  # the pool's, checked out
    assert checked_out(any_app) == 0


def test_sqlite_reads_of_a_thread_share_its_own_connection_until_the_engine_goes(app):
    first, in_use = read_connection_of_a_request(app)
    assert in_use == 0  # not the pool's
    assert read_connection_of_a_request(app)[0] is first
    in_other_thread = []
    worker = threading.Thread(
        target=lambda: in_other_thread.append(read_connection_of_a_request(app)[0])
    )
    worker.start()
    worker.join()
    assert in_other_thread[0] is not first
    with app.app_context():
        db.engine.dispose()
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the pool's connections
        first.execute("SELECT 1")
    assert read_connection_of_a_request(app)[0] is not first


def test_a_read_after_the_request_wrote_sees_the_write(any_app):
    with any_app.test_request_context():
        assert btc_day() == []  # on the request's read connection
        db.session.add(
            Position(account="x", asset="BTC", timestamp=T0, amount=snap().amount, price=None)
        )
        db.session.flush()  # not committed: only the session's transaction sees it
        assert len(btc_day()) == 1
        db.session.rollback()
        assert btc_day() == []


def test_a_failed_request_gives_its_read_connection_back(any_app):
    with pytest.raises(RuntimeError), any_app.test_request_context():
        btc_day()
        raise RuntimeError("the view failed")
    assert checked_out(any_app) == 0


def test_a_lost_read_connection_is_replaced_for_the_next_read(any_app):
    if any_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("a SQLite file has no server to lose the connection to")
    store(any_app, [snap()])
    with any_app.test_request_context():
        btc_day()
        pid = g.get(READ_CONNECTION_KEY)[0].dbapi_connection.info.backend_pid
        with db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as lost:
            btc_day()
        assert lost.value.connection_invalidated
        assert len(btc_day()) == 1  # on a new connection
    assert checked_out(any_app) == 0
