"""Time buckets computed in the database: first, last, lowest and highest per bucket."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import (
    BigInteger,
    Float,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
    type_coerce,
    union,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import aliased
from sqlalchemy.types import NullType

from app.db_types import format_decimal
from app.extensions import db
from app.positions.models import LatestPosition, Position
from app.positions.points import EPOCH, MICROSECOND, Point, point_columns, read_points
from app.positions.rollup import ROLES

# A bucket keeps its first, last, lowest and highest snapshot.
ROLES_PER_BUCKET = 4


def epoch_seconds(moment: datetime) -> float:
    return (moment - EPOCH) / timedelta(seconds=1)


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def micros_as_column_value(micros):
    """SQL for a moment given as epoch microseconds, comparable with a stored timestamp.

    SQLite stores a UTCDateTime as fixed-width text, so the bound is rendered in that
    format and compared as text (the timestamp index stays usable); PostgreSQL gets a
    timestamptz. Integer arithmetic throughout: no float rounding at bucket edges.
    """
    seconds, rest = micros // 1_000_000, micros % 1_000_000
    if db.session.get_bind().dialect.name == "sqlite":
        day_and_time = db.func.strftime("%Y-%m-%d %H:%M:%S", seconds, "unixepoch")
        fraction = db.func.substr(literal("000000").concat(cast(rest, Text)), -6)
        return day_and_time.concat(".").concat(fraction)
    return db.func.to_timestamp(seconds) + rest * literal_column("interval '1 microsecond'")


@dataclass
class Downsampling:
    buckets: int
    start_us: int  # the selection's first timestamp
    span_us: int  # last minus first


def plan_downsampling(accounts: int, first: datetime, last: datetime, max_points: int):
    buckets = max(1, max_points // (ROLES_PER_BUCKET * max(1, accounts)))
    return Downsampling(buckets, to_micros(first), to_micros(last) - to_micros(first))


def downsampled_rows(asset, accounts: list[str], plan: Downsampling) -> list:
    """First, last, lowest and highest snapshot per (account, bucket), found by the database.

    On SQLite, one index range per bucket and account: the first and last rows are
    seeks, the lowest and highest a scan of that bucket only; a row playing several
    roles is returned once (UNION). On PostgreSQL, one pass over the range grouped by
    bucket (`grouped_picks`). Ties on the amount go to the earliest snapshot.
    """
    dialect = db.session.get_bind().dialect.name
    parameters = {
        "asset": asset,
        "accounts": accounts,
        "buckets": plan.buckets,
        "start_us": plan.start_us,
        "span_us": plan.span_us,
        "first_at": EPOCH + plan.start_us * MICROSECOND,
        "last_at": EPOCH + (plan.start_us + plan.span_us) * MICROSECOND,
    }
    if dialect == "postgresql":
        points = read_grouped_picks(_grouped_downsampling_statement(), parameters)
        # In time order, as on SQLite.
        return sorted(points, key=lambda point: (point.at_us, point.account))
    return read_points(_sqlite_downsampling_statement(), parameters)


@cache
def _grouped_downsampling_statement():
    """`downsampled_rows`' query on PostgreSQL, built once with every value a parameter."""
    p = Position
    # OFFSET 0 keeps PostgreSQL from merging the subquery into the grouping, so each
    # snapshot's time is converted once, not once for every aggregate using it.
    seconds = epoch_seconds_exact(p.timestamp)
    rows = (
        select(
            p.account,
            p.id,
            p.amount,
            p.price,
            seconds.label("seconds"),
            seconds_as_micros(seconds).label("micros"),
        )
        .where(
            p.asset == bindparam("asset"),
            p.account.in_(bindparam("accounts", expanding=True)),
            p.timestamp >= bindparam("first_at"),
            p.timestamp <= bindparam("last_at"),
        )
        .offset(0)
        .subquery()
    )
    buckets = bindparam("buckets", type_=BigInteger)
    span_us = bindparam("span_us", type_=BigInteger)
    # Bucket floor((t - first) * buckets / span), the last one also holding t = last.
    offset = rows.c.micros - bindparam("start_us", type_=BigInteger)
    bucket = func.least(buckets - 1, offset * buckets // func.greatest(span_us, 1))
    snapshot = (rows.c.seconds, rows.c.id, rows.c.amount, rows.c.price)
    return grouped_picks(rows.c.account, dict.fromkeys(ROLES, snapshot), bucket)


def grouped_picks(account, roles: dict, bucket, *where):
    """PostgreSQL: a query for the first, last, lowest and highest pick of each (account,
    bucket) in one pass over the rows `where` selects, grouped by `bucket`; run it with
    `read_grouped_picks`.

    `roles` maps each role to the (epoch seconds, id, amount, price) columns it is
    chosen from (for snapshots, the same four; for rollups, each period's own pick); the
    seconds are `epoch_seconds_exact`' NUMERIC. Each candidate is carried as a NUMERIC
    array led by its sort key: its time for first and last, its amount then its time for
    lowest and highest (the time negated for the highest), so `min` and `max` choose
    with the snapshots' order and ties, exactly, and hand over the winner's id, time,
    amount and price with it. Only the winners' times become microseconds.
    """

    def by_time(aggregate, seconds, id_, amount, price):
        chosen = aggregate(array([seconds, id_, amount, price]))
        return chosen[1], chosen[2], chosen[3], chosen[4]

    def by_amount(aggregate, seconds, id_, amount, price, negate_time=False):
        chosen = aggregate(array([amount, -seconds if negate_time else seconds, id_, price]))
        return -chosen[2] if negate_time else chosen[2], chosen[3], chosen[1], chosen[4]

    def columns(seconds, id_, amount, price):
        # A pick's time, id, amount and price, as the driver gives them (PostgreSQL
        # computes an aggregate named several times once).
        plain = NullType()
        micros = seconds_as_micros(seconds)
        return micros, cast(id_, BigInteger), type_coerce(amount, plain), type_coerce(price, plain)

    first, last, low, high = (roles[role] for role in ROLES)
    return (
        select(
            account,
            *columns(*by_time(func.min, *first)),
            *columns(*by_time(func.max, *last)),
            *columns(*by_amount(func.min, *low)),
            # The highest amount, then the highest negated time: the earliest.
            *columns(*by_amount(func.max, *high, negate_time=True)),
        )
        .where(*where)
        .group_by(account, bucket)
    )


def read_grouped_picks(statement, parameters) -> list[Point]:
    """Run a `grouped_picks` query: up to four points a bucket, a snapshot picked in
    several roles once."""
    points: dict[int, Point] = {}
    for name, *picks in db.session.connection().execute(statement, parameters).all():
        # (epoch micros, id, amount, price) four times; exact Decimals from the driver.
        for at in range(0, 16, 4):
            micros, id_, amount, price = picks[at : at + 4]
            if id_ not in points:
                points[id_] = Point(id_, name, micros, format_decimal(amount), amount, price)
    return list(points.values())


def epoch_seconds_exact(column):
    """Seconds since the epoch of a timestamptz as PostgreSQL's exact NUMERIC (`extract`),
    microseconds in its fraction."""
    return func.extract("epoch", column)


def seconds_as_micros(seconds):
    """`epoch_seconds_exact` as BIGINT microseconds (the factor written into the SQL:
    bound, it would take the type of what it multiplies)."""
    return cast(seconds * literal_column("1000000"), BigInteger)


def epoch_micros(column):
    """Microseconds since the epoch of a timestamptz, exactly."""
    return seconds_as_micros(epoch_seconds_exact(column))


@cache
def _sqlite_downsampling_statement():
    """`downsampled_rows`' query on SQLite, built once with every value a parameter."""
    n = bindparam("buckets", type_=BigInteger)
    start_us = bindparam("start_us", type_=BigInteger)
    span_us = bindparam("span_us", type_=BigInteger)

    # A row at t belongs to bucket floor((t - first) * buckets / span), the last bucket
    # also holding t = last; so bucket i starts at first + ceil(i * span / buckets).
    def start_of(i):
        return start_us + (i * span_us + n - 1) // n

    held = bucket_accounts(
        bindparam("asset"),
        bindparam("accounts", expanding=True),
        n,
        lambda i: (start_of(i), case((i == n - 1, start_us + span_us + 1), else_=start_of(i + 1))),
    )
    p = aliased(Position)
    # SQLite keeps the amount as text: ranked by its REAL value (see aligned_rows).
    amount = cast(p.amount, Float)

    def pick(*order):
        return (
            select(p.id)
            .where(
                p.asset == bindparam("asset"),
                p.account == held.c.account,
                p.timestamp >= held.c.lo,
                p.timestamp < held.c.hi,
            )
            .order_by(*order)
            .limit(1)
            .correlate(held)
            .scalar_subquery()
        )

    picks = (
        select(
            pick(p.timestamp).label("first"),
            pick(p.timestamp.desc()).label("last"),
            pick(amount, p.timestamp).label("low"),
            pick(amount.desc(), p.timestamp).label("high"),
        )
        .select_from(held)
        .cte("pick")
    )
    ids = union(*(select(column) for column in picks.c))
    q = Position
    return (
        select(*point_columns(q.id, q.account, q.timestamp, q.amount, q.price))
        .where(q.id.in_(select(ids.subquery())))
        .order_by(q.timestamp, q.account)
    )


def bucket_accounts(asset, accounts, buckets: int, bounds):
    """(account, lo, hi) of every bucket as a CTE; `bounds(i)`: bucket i's [lo, hi) in µs."""
    index = select(literal(0, BigInteger).label("i")).cte("bucket_index", recursive=True)
    index = index.union_all(select(index.c.i + 1).where(index.c.i < buckets - 1))
    lo, hi = bounds(index.c.i)
    return (
        select(
            LatestPosition.account,
            micros_as_column_value(lo).label("lo"),
            micros_as_column_value(hi).label("hi"),
        )
        .where(LatestPosition.asset == asset, LatestPosition.account.in_(accounts))
        .join(index, true())
        .cte("bucket")
    )
