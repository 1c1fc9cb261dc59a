"""The chart of one reconciled asset: both sides on one scale, the breaks shaded.

The document has the shape of `/positions/<asset>/series` (static/js/chart.js draws
it unchanged): a series per side, read through the positions room's chart reader
(raw snapshots up to its cap, downsampled beyond), the right side converted to the
left asset's units by the multiplier, exactly, on the decimal strings.
"""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from app.db_types import format_decimal
from app.positions.series import asset_series

BREAK = "break"


def _side(label: str, document: dict, multiplier: Decimal = Decimal(1)) -> dict:
    """One account's points as [time, amount, None]: in the left asset's units, no notional."""
    points = []
    for series in document["series"]:
        for at, amount, _notional in series["points"]:
            if multiplier != 1:
                amount = format_decimal(Decimal(amount) * multiplier)
            points.append([at, amount, None])
    return {"account": label, "points": points}


def break_spans(transitions: Iterable) -> list[dict]:
    """The periods spent in break, from state changes (anything with .at and .to_state)
    in time order; a break still open has no end."""
    spans = []
    current = None
    for transition in transitions:
        if transition.to_state == BREAK and current is None:
            current = {"from": transition.at.isoformat(), "to": None, "kind": "firing"}
            spans.append(current)
        elif transition.to_state != BREAK and current is not None:
            current["to"] = transition.at.isoformat()
            current = None
    return spans


def chart_document(
    *,
    left_account: str,
    asset: str,
    right_account: str,
    right_asset: str,
    multiplier: Decimal,
    transitions: Iterable,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict:
    """Both sides of one reconciled asset over [start, end), with the break spans."""
    left = asset_series(asset, account=left_account, start=start, end=end)
    right = asset_series(right_asset, account=right_account, start=start, end=end)
    scaled = "" if multiplier == 1 else f" x {format_decimal(multiplier)}"
    series = [
        _side(f"{left_account} {asset}", left),
        _side(f"{right_account} {right_asset}{scaled}", right, multiplier),
    ]
    downsampled = [d["bucket_seconds"] for d in (left, right) if d["downsampled"]]
    return {
        "asset": asset,
        "from": None if start is None else start.isoformat(),
        "to": None if end is None else end.isoformat(),
        "downsampled": bool(downsampled),
        "bucket_seconds": max(downsampled) if downsampled else None,
        "point_count": left["point_count"] + right["point_count"],
        # chart.js drops a series without points; the label still names both sides.
        "series": series,
        "markers": [],
        "limits": [],
        "spans": break_spans(transitions),
    }
