"""CSV of position snapshots: parse an import, stream an export, for the CLI and the web."""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select

from app.db_types import format_decimal, utcnow
from app.extensions import db
from app.positions.ingest import Key, Snapshot, check_timestamp, format_timestamp
from app.positions.models import Position
from app.positions.queries import SNAPSHOT_COLUMNS
from app.user_input import parse_decimal as read_decimal
from app.user_input import parse_moment

COLUMNS = ("account", "asset", "timestamp", "amount", "price")
# Rows per keyset query of an export: bounds memory whatever the table holds.
EXPORT_PAGE_SIZE = 5_000

NAME_MAX_LENGTH = 64
# "1e999999999" is short, but written out in full it would not be.
MAX_EXPONENT = 100
# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class CsvError(ValueError):
    """A line of an import that cannot be stored, with where it is."""

    def __init__(self, line: int, column: str | None, problem: str):
        self.line = line
        self.column = column
        self.problem = problem
        where = f"line {line}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {problem}.")


# --- reading ---------------------------------------------------------------


def read_snapshots(lines: Iterable[str]) -> Iterator[tuple[int, Snapshot]]:
    """Yield (line number, snapshot) for each data row; raise CsvError at the first bad line.

    `lines` are text lines with their line endings (as from a file opened with
    newline=""). The header names the columns in any order; blank lines are skipped.
    """
    reader = csv.reader(lines, strict=True)
    line = 1
    try:
        header = next(reader, None)
        if header is None:
            raise CsvError(1, None, f"the file is empty; expected the header {','.join(COLUMNS)}")
        positions = _read_header(header)
        line = reader.line_num + 1
        now = utcnow()
        for fields in reader:
            if fields:
                yield line, _parse_row(fields, positions, line, now)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise CsvError(line, None, f"not valid CSV ({exc})") from None


def _read_header(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    for name in names:
        if name not in COLUMNS:
            raise CsvError(
                1, None, f"unknown column {name[:40]!r}; the header must be {','.join(COLUMNS)}"
            )
    for name in COLUMNS:
        if names.count(name) != 1:
            problem = "missing from the header" if name not in names else "appears twice"
            raise CsvError(1, name, f"{problem}; the header must be {','.join(COLUMNS)}")
    return {name: names.index(name) for name in COLUMNS}


def _parse_row(fields: list[str], positions: dict[str, int], line: int, now) -> Snapshot:
    if len(fields) > len(COLUMNS):
        raise CsvError(line, None, f"{len(fields)} values, but the header has {len(COLUMNS)}")
    values = {}
    for column, index in positions.items():
        if index >= len(fields):
            raise CsvError(line, column, "the value is missing (the line has too few values)")
        text = fields[index]
        try:
            if column in ("account", "asset"):
                values[column] = parse_name(text)
            elif column == "timestamp":
                values[column] = check_timestamp(parse_moment(text), now)
            elif column == "amount" or text:
                values[column] = parse_decimal(text)
            else:
                values[column] = None  # an empty price: none was sent
        except ValueError as exc:
            raise CsvError(line, column, str(exc)) from None
    return Snapshot(**values)


def parse_name(text: str) -> str:
    """An account or asset name, under the same rule as the API's."""
    if not text:
        raise ValueError("the value is empty")
    if len(text) > NAME_MAX_LENGTH:
        raise ValueError(f"the value is longer than {NAME_MAX_LENGTH} characters")
    if not text.isprintable() or text != text.strip():
        raise ValueError("the value must be printable, without leading or trailing spaces")
    return text


def parse_decimal(text: str) -> Decimal:
    """An exact, finite decimal written out in plain or scientific notation."""
    value = read_decimal(text)
    if abs(value.as_tuple().exponent) > MAX_EXPONENT:
        raise ValueError(f"{text[:40]!r} has an exponent beyond ±{MAX_EXPONENT}")
    return value


def describe_keys(keys: Iterable[Key], line_numbers: dict[Key, list[int]]) -> str:
    """Name snapshot keys and the lines they came from, for an error message."""
    described = []
    for key in keys:
        numbers = line_numbers.get(key, [])
        where = ("line " if len(numbers) == 1 else "lines ") + ", ".join(map(str, numbers))
        described.append(f"{where}: {key[0]!r} {key[1]!r} {format_timestamp(key[2])}")
    return "; ".join(described)


# --- writing ---------------------------------------------------------------


def spreadsheet_safe(name: str) -> str:
    """Keep a spreadsheet from running a name as a formula: prefix a quote.

    Only names (account, asset) can start with these characters as text. Amounts,
    prices and times are written by us from Decimal and datetime, so a leading
    "-" there is a minus sign that spreadsheets read as a number; they are left
    as they are so that they stay numeric and exact.
    """
    return "'" + name if name.startswith(FORMULA_TRIGGERS) else name


def csv_chunks(rows: Iterable, *, for_spreadsheet: bool = False) -> Iterator[str]:
    """The CSV text of `rows` (header first), one chunk per EXPORT_PAGE_SIZE rows.

    The CLI export writes the data raw so that export → import round-trips exactly;
    the web download (`for_spreadsheet`) neutralises names that a spreadsheet would
    run as formulas, so there such names come back with a leading quote.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    name = spreadsheet_safe if for_spreadsheet else str
    for count, row in enumerate(rows, start=1):
        writer.writerow(
            (
                name(row.account),
                name(row.asset),
                format_timestamp(row.timestamp),
                format_decimal(row.amount),
                "" if row.price is None else format_decimal(row.price),
            )
        )
        if count % EXPORT_PAGE_SIZE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- querying ---------------------------------------------------------------


def export_rows(
    *,
    asset: str | None = None,
    account: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    page_size: int = EXPORT_PAGE_SIZE,
) -> Iterator:
    """Yield snapshot rows ordered by asset, time and id, one keyset page at a time.

    Every page is a fresh bounded query, so memory stays flat whatever the size on
    SQLite and PostgreSQL alike, and no cursor stays open while the caller writes.
    """
    assets = [asset] if asset is not None else _all_assets()
    for name in assets:
        yield from _asset_rows(name, account=account, start=start, end=end, page_size=page_size)


def _all_assets() -> Iterator[str]:
    """Each asset in order, one index lookup at a time rather than a DISTINCT scan."""
    previous = None
    while True:
        query = select(func.min(Position.asset))
        if previous is not None:
            query = query.where(Position.asset > previous)
        previous = db.session.execute(query).scalar()
        if previous is None:
            return
        yield previous


def _asset_rows(asset, *, account, start, end, page_size) -> Iterator:
    columns = SNAPSHOT_COLUMNS
    last = None
    while True:
        query = select(*columns).where(Position.asset == asset)
        if account:
            query = query.where(Position.account == account)
        if end is not None:
            query = query.where(Position.timestamp < end)
        if last is not None:
            # `timestamp >=` is a range the (asset, timestamp, id) index can seek to;
            # the OR only steps past rows of the same moment already written.
            query = query.where(
                Position.timestamp >= last.timestamp,
                or_(Position.timestamp > last.timestamp, Position.id > last.id),
            )
        elif start is not None:
            query = query.where(Position.timestamp >= start)
        query = query.order_by(Position.timestamp, Position.id).limit(page_size)
        rows = db.session.execute(query).all()
        yield from rows
        if len(rows) < page_size:
            return
        last = rows[-1]
