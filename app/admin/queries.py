"""Read queries of the admin room: the audit log, filtered and paged."""

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.extensions import db
from app.positions.csv_io import spreadsheet_safe
from app.positions.queries import Cursor
from app.templating import FilterError, parse_local_datetime, utc_iso

FILTER_ARGS = ("actor", "action", "from", "to")
CSV_COLUMNS = ["at", "actor", "action", "target", "detail", "address", "user_agent"]
CSV_BATCH = 1000


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class AuditPage:
    rows: list[AuditEvent]
    next_cursor: Cursor | None


def parse_filters(args: Mapping[str, str]) -> AuditFilters:
    """Read the filters from the query string; FilterError says what is wrong."""
    actor = (args.get("actor") or "").strip().lower() or None
    action = (args.get("action") or "").strip() or None
    if action and action not in Action.ALL:
        raise FilterError("'action' must be one of the listed actions.")
    start = parse_local_datetime(args.get("from") or "", "from")
    end = parse_local_datetime(args.get("to") or "", "to")
    if start and end and start >= end:
        raise FilterError("'from' must be before 'to'.")
    return AuditFilters(actor=actor, action=action, start=start, end=end)


def parse_cursor(text: str | None) -> Cursor | None:
    """The page cursor from the query string; BadCursor if it is not ours."""
    return Cursor.decode(text) if text else None


def _filtered(filters: AuditFilters) -> Select:
    query = select(AuditEvent)
    if filters.actor:
        query = query.where(AuditEvent.actor_name == filters.actor)
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.start is not None:
        query = query.where(AuditEvent.at >= filters.start)
    if filters.end is not None:
        query = query.where(AuditEvent.at < filters.end)
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def audit_page(filters: AuditFilters, cursor: Cursor | None, limit: int) -> AuditPage:
    """One page of events, newest first, keyset-paginated on (at, id)."""
    query = _filtered(filters)
    if cursor is not None:
        # `at <=` is a range the (at, id) index can seek to; the OR only steps past
        # the rows of the cursor's moment already shown.
        query = query.where(
            AuditEvent.at <= cursor.timestamp,
            or_(AuditEvent.at < cursor.timestamp, AuditEvent.id < cursor.id),
        )
    rows = list(db.session.execute(query.limit(limit + 1)).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1].at, rows[-1].id)
    return AuditPage(rows, next_cursor)


def detail_text(detail: dict | None) -> str:
    return json.dumps(detail, sort_keys=True, ensure_ascii=False) if detail else ""


def _safe(text: str | None) -> str:
    return spreadsheet_safe(text) if text else ""


def audit_csv(filters: AuditFilters) -> Iterator[str]:
    """The filtered events as CSV text; cells a spreadsheet would run as formulas are quoted.

    Read one keyset page per chunk, so no database cursor stays open while the
    download is written out.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    cursor = None
    while True:
        page = audit_page(filters, cursor, CSV_BATCH)
        writer.writerows(
            [
                utc_iso(event.at),
                _safe(event.actor_name),
                _safe(event.action),
                _safe(event.target),
                _safe(detail_text(event.detail)),
                _safe(event.ip_address),
                _safe(event.user_agent),
            ]
            for event in page.rows
        )
        yield buffer.getvalue()
        if page.next_cursor is None:
            return
        buffer.seek(0)
        buffer.truncate()
        cursor = page.next_cursor
