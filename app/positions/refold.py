"""Rollups folded again after snapshots are deleted (prune, `flask positions delete`):
the hours from the snapshots left in them, each coarser level from the level below it."""

import itertools
from datetime import datetime

from sqlalchemy import delete, select

from app.extensions import db
from app.positions.models import Position, PositionRollup
from app.positions.queries import SNAPSHOT_COLUMNS
from app.positions.rollup import HOURLY, LEVELS, Level, Period, fold, upsert_periods
from app.positions.watermark import lock_watermark


def refold_hours(first: datetime, last: datetime, *, series: tuple[str, str] | None = None):
    """Rebuild the rollups of the hours `first` to `last` from the snapshots left in them,
    and of the days and weeks holding them from the level below, of one (account, asset)
    `series` or of all; the caller commits."""
    mark = lock_watermark()
    r, p = PositionRollup, Position
    in_hours = [r.hour_start >= first, r.hour_start <= last]
    if series is not None:
        in_hours += [r.account == series[0], r.asset == series[1]]
    # By asset, so the read is a range of the (asset, timestamp) index, not a scan.
    assets = list(db.session.scalars(select(r.asset).where(*in_hours).distinct()))
    db.session.execute(delete(PositionRollup).where(*in_hours))
    if not assets:
        _refold_above_hours(first, last, series)
        return
    # The end of the last hour, written so that it never overflows.
    end = last.replace(minute=59, second=59, microsecond=999_999)
    rows = select(*SNAPSHOT_COLUMNS).where(
        p.asset.in_(assets), p.timestamp >= first, p.timestamp <= end, p.id <= mark.folded_id
    )
    if series is not None:
        rows = rows.where(p.account == series[0])
    upsert_periods(HOURLY, fold(db.session.execute(rows).all()))
    _refold_above_hours(first, last, series)


def _refold_above_hours(first: datetime, last: datetime, series=None) -> None:
    """Rebuild the days, then the weeks, that hold the moments `first` to `last`."""
    for finer, level in itertools.pairwise(LEVELS):
        _refold(finer, level, level.floor(first), level.floor(last), series)


def _refold(finer: Level, level: Level, first: datetime, last: datetime, series=None) -> None:
    """Rebuild the periods of `level` starting `first` to `last` from the periods of the
    `finer` level inside them: a day is the fold of its hours, a week of its days."""
    coarse, fine = level.model, finer.model
    coarse_start, fine_start = level.start_column(), finer.start_column()
    in_periods = [coarse_start >= first, coarse_start <= last]
    in_finer = [fine_start >= first, fine_start < last + level.width]
    if series is not None:
        in_periods += [coarse.account == series[0], coarse.asset == series[1]]
        in_finer += [fine.account == series[0], fine.asset == series[1]]
    db.session.execute(delete(coarse).where(*in_periods))
    periods: dict[tuple, Period] = {}
    for row in db.session.execute(select(fine.__table__).where(*in_finer)):
        key = (row.account, row.asset, level.floor(getattr(row, finer.start)))
        if key in periods:
            periods[key].merge(Period.from_row(row))
        else:
            periods[key] = Period.from_row(row)
    upsert_periods(level, periods)


def drop_hours_before(moment: datetime) -> None:
    """Delete the rollups of hours, days and weeks that ended at or before `moment`; a
    day or week it cuts through is folded again from what is left below it."""
    for finer, level in [(None, HOURLY), *itertools.pairwise(LEVELS)]:
        start = level.start_column()
        db.session.execute(delete(level.model).where(start <= moment - level.width))
        if finer is not None and level.floor(moment) != moment:
            cut = level.floor(moment)
            _refold(finer, level, cut, cut)
    db.session.commit()
