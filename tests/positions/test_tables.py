"""Table rows rendered once and reused while the same row objects come back."""

from decimal import Decimal
from zoneinfo import ZoneInfo

from app.positions import tables
from app.positions.queries import SnapshotRow
from tests.positions.helpers import T0

UTC_ZONE = ZoneInfo("UTC")


def page_of(n: int) -> list[SnapshotRow]:
    return [SnapshotRow(i, "main", "BTC", T0, Decimal(f"{i}.5"), None) for i in range(n)]


def test_a_page_of_the_same_row_objects_is_kept_once_its_rows_were_rendered_before():
    rows = page_of(3)
    kept = len(tables._history_pages)
    first = tables.history_rows(rows, UTC_ZONE)  # rows rendered now: the page is not kept
    assert len(tables._history_pages) == kept
    assert tables.history_rows(rows, UTC_ZONE) == first
    assert len(tables._history_pages) == kept + 1
    assert tables.history_rows(list(rows), UTC_ZONE) == first


def test_pages_of_rows_made_anew_for_every_read_are_not_kept():
    kept = len(tables._history_pages)
    pages = {str(tables.history_rows(page_of(3), UTC_ZONE)) for _ in range(3)}
    assert len(pages) == 1
    assert len(tables._history_pages) == kept
