"""Column types that keep decimals exact and times in UTC on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from decimal import Context, Decimal

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.types import TypeDecorator

# Arithmetic on stored decimals (notional, exposure, changes) with enough digits that
# nothing is ever rounded; the default context keeps only 28.
EXACT = Context(prec=200)


def format_decimal(value: Decimal) -> str:
    """Render a decimal in plain notation, keeping the digits it was given."""
    return format(value, "f")


class ExactDecimal(TypeDecorator):
    """A decimal stored without rounding.

    PostgreSQL keeps an unconstrained NUMERIC exactly, scale included. SQLite's
    NUMERIC goes through float, so there the value is stored as its text.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(80))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal needs a Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise ValueError("ExactDecimal refuses NaN and infinity")
        return format_decimal(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        value = value.astimezone(UTC)
        # SQLite stores text; a fixed naive UTC format keeps it sortable.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def sqlite_datetime_text(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores for a UTCDateTime value.

    For bulk writes that skip SQLAlchemy's per-value processing; a test pins it to
    what SQLAlchemy itself writes.
    """
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d} "
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}"
    )


def driver_utc(value: str | datetime | None) -> datetime | None:
    """A UTCDateTime value as a driver returns it, aware in UTC: SQLite gives the
    stored naive UTC text, PostgreSQL an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        # One parse with the zone, no replace() (slower, on a hot path).
        return datetime.fromisoformat(value + "+00:00")
    return value.astimezone(UTC)
