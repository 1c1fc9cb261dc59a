"""ingest.record on PostgreSQL: the COPY path keeps the one write path's rules."""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, event, exc, text

from app.alerts.models import Alert, AlertRule, AlertState, RuleKind
from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import Snapshot, record
from app.positions.models import LatestPosition, Position
from tests.api.conftest import Tokens, bearer
from tests.conftest import build_app
from tests.positions.helpers import T0, latest, snap, store

# Only the PostgreSQL side of the any_app fixture (skipped without TEST_DATABASE_URL).
pytestmark = pytest.mark.parametrize("any_app", ["postgres"], indirect=True)


def rows(app):
    """Every stored snapshot as text, so a lost digit or scale shows."""
    with app.app_context():
        return [
            (
                p.account,
                p.asset,
                p.timestamp,
                format(p.amount, "f"),
                None if p.price is None else format(p.price, "f"),
            )
            for p in db.session.execute(
                db.select(Position).order_by(Position.account, Position.asset, Position.timestamp)
            ).scalars()
        ]


def outcome(result):
    return (result.inserted, result.duplicates, result.conflicts)


def staged_rows() -> int:
    """Rows in the staging table; none where it is not, or no longer, there."""
    staging = db.session.execute(text("SELECT to_regclass('pg_temp.ingest_batch')"))
    if staging.scalar_one() is None:
        return 0
    return db.session.execute(text("SELECT count(*) FROM pg_temp.ingest_batch")).scalar_one()


def test_a_batch_holding_a_stored_key_is_staged_in_a_temporary_table_emptied_at_commit(
    any_app,
):
    store(any_app, [snap(minutes=0)])
    with any_app.app_context():
        result = record([snap(minutes=i) for i in range(3)] + [snap(minutes=0)])
        assert staged_rows() == 3  # the keys, once each: a repeat is counted in Python
        db.session.commit()
        assert staged_rows() == 0
        assert (result.inserted, result.duplicates) == (2, 2)
    assert len(rows(any_app)) == 3


def test_a_batch_of_new_keys_goes_into_the_history_without_staging(any_app):
    with any_app.app_context():
        db.session.execute(text("DROP TABLE IF EXISTS pg_temp.ingest_batch"))
        result = record([snap(minutes=i) for i in range(3)])
        staging = db.session.execute(text("SELECT to_regclass('pg_temp.ingest_batch')"))
        assert staging.scalar_one() is None
        db.session.commit()
    assert (result.inserted, result.duplicates) == (3, 0)
    assert len(rows(any_app)) == 3
    assert latest(any_app).timestamp == T0 + timedelta(minutes=2)


def test_new_rows_duplicates_and_conflicts_are_told_apart(any_app):
    store(any_app, [snap(minutes=0, amount="1.50"), snap(minutes=1, price=None)])
    store(any_app, [snap(minutes=2, price="7")])
    result = store(
        any_app,
        [
            snap(minutes=0, amount="1.5"),  # stored, equal value written differently
            snap(minutes=1, price=None),  # stored, both prices NULL
            snap(minutes=3),  # new
            snap(minutes=3),  # new, repeated in the batch
            snap(minutes=4, amount="4"),  # new ...
            snap(minutes=4, amount="5"),  # ... and a different amount in the same batch
            snap(minutes=1, price="100"),  # a price where the batch had none: a conflict
            snap(minutes=2, price=None),  # no price where one is stored: a conflict
            snap(minutes=2, amount="2", price="7"),  # differs from the row above: a conflict
        ],
    )
    # In the batch's order: those within the batch first, then those against stored rows.
    assert outcome(result) == (
        2,
        3,
        [
            ("main", "BTC", T0 + timedelta(minutes=4)),
            ("main", "BTC", T0 + timedelta(minutes=1)),
            ("main", "BTC", T0 + timedelta(minutes=2)),
            ("main", "BTC", T0 + timedelta(minutes=2)),
        ],
    )
    assert result.changed_series == {("main", "BTC")}
    assert rows(any_app) == [
        ("main", "BTC", T0, "1.50", "100"),
        ("main", "BTC", T0 + timedelta(minutes=1), "1.5", None),
        ("main", "BTC", T0 + timedelta(minutes=2), "1.5", "7"),
        ("main", "BTC", T0 + timedelta(minutes=3), "1.5", "100"),
        ("main", "BTC", T0 + timedelta(minutes=4), "4", "100"),
    ]


def test_the_same_batches_give_the_same_results_as_on_sqlite(any_app, tmp_path):
    sqlite_app = build_app(f"sqlite:///{tmp_path / 'same.sqlite3'}")
    with sqlite_app.app_context():
        db.create_all()
    batches = [
        [snap(asset=a, minutes=m, amount=str(m)) for a in ("BTC", "ETH") for m in range(5)],
        [snap(asset="BTC", minutes=m, amount=str(m)) for m in range(3, 8)],
        [snap(asset="ETH", minutes=2, amount="2.0"), snap(asset="ETH", minutes=9, price=None)],
        [snap(asset="ETH", minutes=3, amount="-3"), snap(asset="SOL", minutes=1)],
        [snap(asset="SOL", minutes=0, price=None), snap(asset="SOL", minutes=0, price="1")],
    ]
    for batch in batches:
        on_sqlite = store(sqlite_app, batch)
        on_postgres = store(any_app, batch)
        assert outcome(on_postgres) == outcome(on_sqlite)
        assert on_postgres.changed_series == on_sqlite.changed_series
    assert rows(any_app) == rows(sqlite_app)
    for asset in ("BTC", "ETH", "SOL"):
        mine, theirs = latest(any_app, asset=asset), latest(sqlite_app, asset=asset)
        assert (mine.timestamp, mine.amount, mine.price) == (
            theirs.timestamp,
            theirs.amount,
            theirs.price,
        )
    with sqlite_app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(
    "amount, price",
    [
        ("0.000000000000000001", "123456789012345678.123456789"),
        ("123456789012345678.123456789", "0.000000000000000001"),
        ("-1.50", "0.10"),
        ("1E+3", "2.5E-7"),
    ],
)
def test_decimals_go_through_copy_exactly(any_app, amount, price):
    store(any_app, [snap(amount=amount, price=price)])
    exact = (format(Decimal(amount), "f"), format(Decimal(price), "f"))
    assert rows(any_app) == [("main", "BTC", T0, *exact)]
    row = latest(any_app)
    assert (format(row.amount, "f"), format(row.price, "f")) == exact


def test_latest_moves_to_the_newest_new_snapshot_and_never_back(any_app):
    store(any_app, [snap(minutes=3, amount="3"), snap(minutes=7, amount="7"), snap(minutes=5)])
    assert (latest(any_app).timestamp, latest(any_app).amount) == (
        T0 + timedelta(minutes=7),
        Decimal("7"),
    )
    store(any_app, [snap(minutes=6, amount="6"), snap(minutes=1, amount="1")])  # late, older
    assert latest(any_app).amount == Decimal("7")
    store(any_app, [snap(minutes=7, amount="7"), snap(minutes=8, amount="8", price=None)])
    row = latest(any_app)
    assert (row.timestamp, row.amount, row.price) == (T0 + timedelta(minutes=8), 8, None)


def test_a_conflict_rolled_back_leaves_nothing_behind(any_app):
    store(any_app, [snap(minutes=0, amount="1")])
    with any_app.app_context():
        result = record([snap(minutes=m, amount="9") for m in range(5)])
        assert result.conflicts == [("main", "BTC", T0)] and result.inserted == 4
        db.session.rollback()
        assert staged_rows() == 0
    assert rows(any_app) == [("main", "BTC", T0, "1", "100")]
    assert latest(any_app).timestamp == T0


def test_api_batch_with_one_conflict_among_a_thousand_stores_nothing(any_app):
    secret = Tokens(any_app).create("ingest")
    client = any_app.test_client()
    first = {"account": "main", "asset": "BTC", "timestamp": "2026-03-01T12:00:00Z", "amount": "1"}
    batch = [
        {**first, "timestamp": f"2026-03-01T13:{n // 60:02d}:{n % 60:02d}Z", "amount": str(n)}
        for n in range(999)
    ] + [{**first, "amount": "2"}]
    headers = {**bearer(secret), "Content-Type": "application/json"}
    assert (
        client.post(
            "/api/v1/positions", data=json.dumps({"positions": [first]}), headers=headers
        ).status_code
        == 200
    )
    response = client.post(
        "/api/v1/positions", data=json.dumps({"positions": batch}), headers=headers
    )
    assert response.status_code == 409
    assert len(response.get_json()["conflicts"]) == 1
    assert rows(any_app) == [("main", "BTC", T0, "1", None)]
    assert latest(any_app).timestamp == T0


def _blocked_on_a_lock(app) -> bool:
    with app.app_context():
        waiting = db.session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
        db.session.rollback()
        return waiting > 0


@pytest.mark.parametrize("amount, expected", [("1.5", (0, 50, 0)), ("2", (0, 0, 50))])
def test_a_batch_waiting_on_another_with_the_same_keys_classifies_them_once_it_commits(
    any_app, amount, expected
):
    """The second batch's insert waits for the first; their rows are committed after
    its statement began, so it must look again to tell duplicates from conflicts."""
    first_recorded = threading.Event()
    answers = {}

    def first():
        with any_app.app_context():
            answers["first"] = record([snap(minutes=m) for m in range(50)])
            first_recorded.set()
            deadline = time.monotonic() + 10
            while not _blocked_on_a_lock(any_app) and time.monotonic() < deadline:
                time.sleep(0.02)
            answers["second_waited"] = time.monotonic() < deadline
            db.session.commit()

    def second():
        first_recorded.wait(10)
        with any_app.app_context():
            answers["second"] = record([snap(minutes=m, amount=amount) for m in range(50)])
            db.session.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers["second_waited"]
    assert outcome(answers["first"]) == (50, 0, [])
    second_outcome = outcome(answers["second"])
    assert (second_outcome[0], second_outcome[1], len(second_outcome[2])) == expected
    assert len(rows(any_app)) == 50


def test_two_concurrent_batches_of_the_same_keys_store_one_row_each(any_app):
    barrier = threading.Barrier(2)
    results = []

    def post():
        with any_app.app_context():
            batch = [snap(asset=a, minutes=m) for a in ("BTC", "ETH") for m in range(300)]
            barrier.wait(10)
            results.append(record(batch))
            db.session.commit()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted((r.inserted, r.duplicates, len(r.conflicts)) for r in results) == [
        (0, 600, 0),
        (600, 0, 0),
    ]
    assert len(rows(any_app)) == 600


def test_two_concurrent_batches_listing_the_same_keys_in_opposite_orders_do_not_deadlock(
    any_app,
):
    barrier = threading.Barrier(2)
    results, errors = [], []
    keys = [(a, m) for a in ("BTC", "ETH") for m in range(500)]

    def post(order):
        with any_app.app_context():
            batch = [snap(asset=a, minutes=m) for a, m in order]
            barrier.wait(10)
            try:
                results.append(record(batch))
                db.session.commit()
            except Exception as error:  # a deadlock: PostgreSQL aborts one of them
                errors.append(error)
                db.session.rollback()

    threads = [threading.Thread(target=post, args=(order,)) for order in (keys, keys[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(r.inserted for r in results) == [0, 1000]
    assert len(rows(any_app)) == 1000


def test_alerts_fire_in_the_ingest_request(any_app):
    with any_app.app_context():
        db.session.add(
            AlertRule(
                name="too long", kind=RuleKind.POSITION_ABOVE, asset="BTC", threshold=Decimal("10")
            )
        )
        db.session.commit()
    secret = Tokens(any_app).create("ingest")
    moment = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    body = {
        "positions": [
            {"account": "main", "asset": "BTC", "timestamp": moment.isoformat(), "amount": "11"},
            {"account": "main", "asset": "ETH", "timestamp": moment.isoformat(), "amount": "99"},
        ]
    }
    response = any_app.test_client().post(
        "/api/v1/positions",
        data=json.dumps(body),
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    with any_app.app_context():
        alerts = db.session.execute(db.select(Alert)).scalars().all()
        assert [(a.account, a.asset, a.state, a.value) for a in alerts] == [
            ("main", "BTC", AlertState.FIRING, Decimal("11"))
        ]


def test_a_value_the_table_refuses_is_a_database_error_and_nothing_is_stored(any_app):
    with any_app.app_context():
        with pytest.raises(exc.DataError):
            record([snap(), Snapshot("a" * 65, "BTC", T0, Decimal("1"))])
        db.session.rollback()
        assert rows(any_app) == []
        # The rollback took the new temporary table with it; the next batch makes another.
        assert record([snap()]).inserted == 1
        db.session.commit()
    assert len(rows(any_app)) == 1


@pytest.mark.parametrize(
    ("stored", "before"),
    [
        ([], "SAVEPOINT"),  # a batch of new keys: the COPY into the history
        ([snap()], "CREATE TEMP TABLE"),  # a key stored: the COPY into the staging table
    ],
)
def test_a_connection_lost_during_copy_is_an_operational_error_and_leaves_the_pool(
    any_app, stored, before
):
    """What the app answers with a 503: the server goes away between the statements."""
    url = any_app.config["SQLALCHEMY_DATABASE_URI"]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    store(any_app, stored)
    with any_app.app_context():
        engine = db.engine

        def terminate(conn, cursor, statement, *args):
            if statement.lstrip().startswith(before):
                pid = conn.connection.driver_connection.info.backend_pid
                with admin.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        event.listen(engine, "after_cursor_execute", terminate)
        try:
            with pytest.raises(exc.OperationalError) as raised:
                record([snap()])
        finally:
            event.remove(engine, "after_cursor_execute", terminate)
            admin.dispose()
        assert raised.value.connection_invalidated
        db.session.rollback()
        assert record([snap(minutes=1)]).inserted == 1  # a fresh connection
        db.session.commit()
    assert len(rows(any_app)) == len(stored) + 1


def test_latest_rows_of_many_series_in_one_batch(any_app):
    batch = [
        snap(account=account, asset=f"A{n}", minutes=m, amount=str(m))
        for account in ("main", "hedge")
        for n in range(30)
        for m in (2, 0, 1)
    ]
    result = store(any_app, batch)
    assert result.inserted == 180 and len(result.changed_series) == 60
    with any_app.app_context():
        latest_rows = db.session.execute(db.select(LatestPosition)).scalars().all()
        assert len(latest_rows) == 60
        assert {(r.timestamp, r.amount) for r in latest_rows} == {
            (T0 + timedelta(minutes=2), Decimal("2"))
        }
