"""Chart series of one asset: its snapshots, downsampled in the database past a cap."""

import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app.alerts.models import Alert, AlertRule, AlertTransition
from app.db_types import format_decimal
from app.extensions import db
from app.positions import daily
from app.positions.buckets import (
    EPOCH,
    downsampled_rows,
    epoch_seconds,
    plan_downsampling,
)
from app.positions.hourly import aligned_rows, plan_rollups, waiting_points
from app.positions.models import LatestPosition, Position
from app.positions.overlay import firing_spans, limit_lines
from app.positions.points import MICROSECOND, Point, point_columns, read_points
from app.positions.rollup import far_behind, folded_id
from app.positions.watermark import newest_drawn_id
from app.user_input import parse_moment as read_moment

MAX_MARKERS = 500

# A rule id, in ASCII digits.
RULE_ID = re.compile(r"[0-9]{1,9}")
# Epoch seconds, in ASCII digits (float() would also take other scripts' digits, "inf", "1e9").
EPOCH_SECONDS = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,6})?")
# A "+01:00" offset sent unencoded in a query string arrives as " 01:00".
UNENCODED_OFFSET = re.compile(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


class BadParameter(ValueError):
    """A query parameter that cannot be used; names the parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def parse_moment(text: str | None, name: str) -> datetime | None:
    """ISO 8601 with an offset, or epoch seconds; empty means open-ended."""
    text = (text or "").strip()
    if not text:
        return None
    if EPOCH_SECONDS.fullmatch(text):
        try:
            return EPOCH + timedelta(seconds=float(text))
        except OverflowError:
            raise BadParameter(name, f"'{name}' is out of range.") from None
    try:
        return read_moment(UNENCODED_OFFSET.sub(r"\1+\2", text))
    except ValueError as exc:
        raise BadParameter(
            name, f"'{name}' must be ISO 8601 with an offset, or epoch seconds: {exc}."
        ) from None


def parse_range(args) -> tuple[datetime | None, datetime | None]:
    """The from/to query parameters; `from` inclusive, `to` exclusive."""
    start = parse_moment(args.get("from"), "from")
    end = parse_moment(args.get("to"), "to")
    if start is not None and end is not None and start >= end:
        raise BadParameter("from", "'from' must be before 'to'.")
    return start, end


def parse_rule(args) -> int | None:
    """The `rule` query parameter: a rule id whose lines alone the chart draws."""
    text = (args.get("rule") or "").strip()
    if not text:
        return None
    if not RULE_ID.fullmatch(text):
        raise BadParameter("rule", "'rule' must be a rule id.")
    return int(text)


def _selection(query, table, asset, account, start, end):
    query = query.where(table.asset == asset)
    if account:
        query = query.where(table.account == account)
    if start is not None:
        query = query.where(table.timestamp >= start)
    if end is not None:
        query = query.where(table.timestamp < end)
    return query


def _count_up_to(asset, account, start, end, limit) -> int:
    """How many rows the selection holds, counting no further than `limit` (index only)."""
    some = _selection(select(Position.id), Position, asset, account, start, end).limit(limit)
    return db.session.execute(select(func.count()).select_from(some.subquery())).scalar_one()


def _raw_points(asset, account, start, end, limit) -> list[Point]:
    p = Position
    query = select(*point_columns(p.id, p.account, p.timestamp, p.amount, p.price))
    query = _selection(query, p, asset, account, start, end)
    return read_points(query.order_by(p.timestamp, p.account).limit(limit))


def _accounts_with_rows(asset, account, start, end) -> list[str]:
    held = select(Position.id).where(Position.account == LatestPosition.account)
    held = _selection(held, Position, asset, None, start, end)
    query = select(LatestPosition.account).where(LatestPosition.asset == asset, held.exists())
    if account:
        query = query.where(LatestPosition.account == account)
    return list(db.session.execute(query.order_by(LatestPosition.account)).scalars())


def _time_extent(asset, account, start, end) -> tuple[datetime, datetime]:
    """The selection's first and last timestamp: two index seeks in one statement."""
    edge = _selection(select(Position.timestamp), Position, asset, account, start, end)
    first = edge.order_by(Position.timestamp).limit(1).scalar_subquery()
    last = edge.order_by(Position.timestamp.desc()).limit(1).scalar_subquery()
    return tuple(db.session.execute(select(first, last)).one())


def _whole_extent(asset, account, waiting: list[Point]):
    """The whole history's accounts, first and last timestamp: from the daily rollups and
    the snapshots waiting to be folded."""
    in_days = daily.accounts_with_rows(asset, account)
    accounts = sorted({*in_days, *(point.account for point in waiting)})
    edges = list(daily.time_extent(asset, in_days)) if in_days else []
    edges += [EPOCH + point.at_us * MICROSECOND for point in waiting]
    return accounts, min(edges), max(edges)


def _waiting(asset, account, start, end) -> list[Point] | None:
    """The selection's snapshots above the watermark, not folded yet: none when no id was
    drawn since it, else read by id (on PostgreSQL every partition); None when too many
    wait for the rollups to be worth reading. Read only by a chart that reads rollups."""
    watermark, newest_id = folded_id(), newest_drawn_id()
    if newest_id <= watermark:
        return []
    if far_behind(watermark, newest_id):
        return None
    return waiting_points(asset, account, watermark, start, end)


def asset_series(asset, *, account=None, start=None, end=None, max_points=None) -> dict:
    """The series part of the chart document: raw rows up to the cap (CHART_MAX_POINTS
    unless given), else downsampled."""
    if max_points is None:
        max_points = current_app.config["CHART_MAX_POINTS"]
    bucket_seconds = rows = waiting = None
    whole_range = start is None and end is None
    # The whole history reads what waits first: while few do, its size, accounts and
    # extent come from the daily rollups and them, not from every month of the history.
    if whole_range:
        waiting = _waiting(asset, account, start, end)
    whole = whole_range and waiting is not None
    if whole:
        count = daily.count_up_to(asset, account, max_points + 1) + len(waiting)
    else:
        count = _count_up_to(asset, account, start, end, max_points + 1)
    if count <= max_points:
        rows = _raw_points(asset, account, start, end, max_points + 1)
    # Snapshots may land between the count and the read (PostgreSQL reads committed).
    if rows is None or len(rows) > max_points:
        if whole:
            accounts, first, last = _whole_extent(asset, account, waiting)
        else:
            accounts = _accounts_with_rows(asset, account, start, end)
            first, last = _time_extent(asset, account, start, end)
        plan = plan_downsampling(len(accounts), first, last, max_points)
        # Buckets of half an hour or more: whole UTC hours (or days, from half a day on),
        # mostly read from the rollups, beside what waits, unless too many snapshots wait.
        aligned = plan_rollups(plan)
        if aligned is not None and not whole_range:
            waiting = _waiting(asset, account, start, end)
        if waiting is None:
            aligned = None
        if aligned is None:
            bucket_seconds = plan.span_us / plan.buckets / 1e6
            rows = downsampled_rows(asset, accounts, plan)
        else:
            bucket_seconds = aligned.width_us / 1e6
            rows = aligned_rows(asset, accounts, aligned, start, end, waiting)
    by_account: dict[str, list] = {}
    for point in rows:
        by_account.setdefault(point.account, []).append(point.chart_point())
    return {
        "downsampled": bucket_seconds is not None,
        "bucket_seconds": bucket_seconds,
        "point_count": len(rows),
        "series": [{"account": name, "points": by_account[name]} for name in sorted(by_account)],
    }


def alert_markers(asset, *, account=None, start=None, end=None, limit=MAX_MARKERS) -> list:
    """Stored alert transitions of the asset in the range: the newest `limit`, oldest first."""
    query = (
        select(AlertTransition, Alert.account, AlertRule.name, AlertRule.severity)
        .join(Alert, AlertTransition.alert_id == Alert.id)
        .join(AlertRule, Alert.rule_id == AlertRule.id)
        .where(Alert.asset == asset)
    )
    if account:
        query = query.where(Alert.account == account)
    if start is not None:
        query = query.where(AlertTransition.at >= start)
    if end is not None:
        query = query.where(AlertTransition.at < end)
    query = query.order_by(AlertTransition.at.desc(), AlertTransition.id.desc()).limit(limit)
    markers = [
        {
            "time": epoch_seconds(transition.at),
            "state": transition.to_state,
            "rule": rule,
            "account": alert_account,
            "value": None if transition.value is None else format_decimal(transition.value),
            "severity": severity,
        }
        for transition, alert_account, rule, severity in db.session.execute(query)
    ]
    markers.reverse()
    return markers


def chart_document(asset, *, account=None, start=None, end=None, rule_id=None) -> dict:
    """Everything the chart of one asset needs, as the JSON contract describes it.

    With `rule_id`, the limit lines and firing spans are that rule's alone.
    """
    return {
        "asset": asset,
        "from": None if start is None else start.isoformat(),
        "to": None if end is None else end.isoformat(),
        **asset_series(asset, account=account, start=start, end=end),
        "markers": alert_markers(asset, account=account, start=start, end=end),
        "limits": limit_lines(asset, account=account, rule_id=rule_id),
        "spans": firing_spans(asset, account=account, rule_id=rule_id, start=start, end=end),
    }
