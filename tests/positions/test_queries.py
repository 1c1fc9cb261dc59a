"""How the positions room's reads reach the database."""

import itertools

import pytest

from app.extensions import db
from app.positions import queries
from tests.positions.helpers import T0

FILTER_SHAPES = list(itertools.product([False, True], repeat=4))


@pytest.mark.parametrize(("account", "start", "end", "cursor"), FILTER_SHAPES)
def test_every_history_read_is_answered_from_the_index_alone(app, account, start, end, cursor):
    query = queries.history_query(
        "BTC",
        account="main" if account else None,
        start=T0 if start else None,
        end=T0 if end else None,
        cursor=queries.Cursor(T0, 7) if cursor else None,
    ).limit(101)
    with app.app_context():
        connection = db.session.connection()
        compiled = query.compile(connection.engine)
        # The plan does not depend on the values bound.
        values = (None,) * len(compiled.positiontup)
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values).all()
    assert plan
    assert all("USING COVERING INDEX ix_position_asset" in row[-1] for row in plan), plan
