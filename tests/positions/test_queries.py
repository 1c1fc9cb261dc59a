"""How the positions room's reads reach the database."""

import itertools

import pytest

from app.extensions import db
from app.positions import queries

FILTER_SHAPES = list(itertools.product([False, True], repeat=4))


@pytest.mark.parametrize(("account", "start", "end", "cursor"), FILTER_SHAPES)
def test_every_history_read_is_answered_from_the_index_alone(app, account, start, end, cursor):
    read = queries._history_statement(account, start, end, cursor)
    with app.app_context():
        connection = db.session.connection()
        compiled = read._compile(connection.dialect)
        values = dict.fromkeys(compiled.defaults, None)
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + compiled.sql,
            tuple(values[name] for name in compiled.positions),
        ).all()
    assert plan
    assert all("USING COVERING INDEX ix_position_asset" in row[-1] for row in plan), plan
