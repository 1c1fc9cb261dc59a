"""Times and numbers read from text that people and feeds send: one rule for every entry.

API bodies and query strings, CSV files, pages' filters and `flask` options all read
moments and decimals here, so that a moment with no place in UTC is a clear refusal
(never an OverflowError, never a 500) and only ASCII digits count as digits: Python's
own Decimal(), int(), float() and strptime() would read full-width or Arabic-Indic
digits as 123.
"""

import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation

# Longer input is refused before any parsing: no value we accept needs more.
MAX_TEXT_LENGTH = 100
# Plain or scientific notation with ASCII digits only: Decimal() itself would also take
# "NaN", "Infinity", " 1 ", "1_000" and digits of any script.
DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
# fromisoformat() silently drops digits past the microsecond; refuse them instead.
SUB_MICROSECOND = re.compile(r"[.,][0-9]{7,}")


def in_utc(moment: datetime) -> datetime:
    """The aware moment in UTC; ValueError when UTC has no such moment (year 0 or 10000)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{moment.isoformat()!r} is out of range: in UTC it falls outside years 1 to 9999"
        ) from None


def parse_moment(text: str, *, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 moment, returned in UTC; ValueError with a readable reason otherwise.

    A moment without an offset is read in `zone` when one is given (a person typing in
    their own timezone), and refused otherwise (a feed must say what it means).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("the value is empty")
    shown = repr(text[:40])
    if len(text) > MAX_TEXT_LENGTH or not text.isascii():
        raise ValueError(f"{shown} is not ISO 8601 like 2026-03-01T12:00:00Z")
    if SUB_MICROSECOND.search(text):
        raise ValueError(f"{shown} has more precision than a microsecond")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{shown} is not ISO 8601 like 2026-03-01T12:00:00Z") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if zone is None:
            raise ValueError(f"{shown} has no timezone; add Z or +hh:mm")
        moment = moment.replace(tzinfo=zone)
    return in_utc(moment)


def parse_decimal(text: str) -> Decimal:
    """An exact, finite decimal in plain or scientific notation, written in ASCII digits."""
    if not text:
        raise ValueError("the value is empty")
    shown = repr(text[:40])
    if len(text) > MAX_TEXT_LENGTH or not DECIMAL_TEXT.fullmatch(text):
        raise ValueError(
            f"{shown} is not a finite decimal number written in digits 0-9, such as -12.5"
        )
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{shown} is not a decimal number") from None


def parse_integer(text: str) -> int:
    """A whole number written in ASCII digits, with an optional sign."""
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text or ""):
        raise ValueError(f"{(text or '')[:40]!r} is not a whole number written in digits 0-9")
    return int(text)
