"""A chart of the whole history, sized from the daily rollups when every snapshot is folded.

Then the rollups hold exactly the snapshots, and a day row per series and day answers
how many there are (up to the cap), whose they are and when they begin and end: on
PostgreSQL the same questions of the snapshots plan every month of the history, which
grows with its age (bench/README.md, scale.py).
"""

from datetime import datetime

from sqlalchemy import func, select

from app.extensions import db
from app.positions.models import LatestPosition
from app.positions.models import PositionDailyRollup as Day


def _of(query, asset, account):
    query = query.where(Day.asset == asset)
    return query if not account else query.where(Day.account == account)


def count_up_to(asset, account, limit: int) -> int:
    """The snapshots of the asset (of one account), counting no further than about `limit`.

    Summed over at most `limit` day rows: with that many days there are that many rows.
    """
    days = _of(select(Day.rows), asset, account).limit(limit).subquery()
    total = select(func.coalesce(func.sum(days.c.rows), 0))
    return db.session.execute(total).scalar_one()


def accounts_with_rows(asset, account) -> list[str]:
    latest = LatestPosition
    held = select(Day.rows).where(Day.asset == latest.asset, Day.account == latest.account)
    query = select(latest.account).where(latest.asset == asset, held.exists())
    if account:
        query = query.where(latest.account == account)
    return list(db.session.execute(query.order_by(latest.account)).scalars())


def time_extent(asset, accounts: list[str]) -> tuple[datetime, datetime]:
    """The first and the last snapshot's time: each account's first and last day's."""

    def edge(account, at, order):
        query = select(at).where(Day.asset == asset, Day.account == account)
        return query.order_by(order).limit(1).scalar_subquery()

    edges = [edge(a, Day.first_at, Day.day_start) for a in accounts]
    edges += [edge(a, Day.last_at, Day.day_start.desc()) for a in accounts]
    found = db.session.execute(select(*edges)).one()
    return min(found[: len(accounts)]), max(found[len(accounts) :])
