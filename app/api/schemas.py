"""Pydantic models of the API: they validate requests and generate the OpenAPI document."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from app.positions.ingest import check_timestamp
from app.user_input import parse_decimal, parse_moment

MAX_BATCH = 10_000
MAX_SIGNIFICANT_DIGITS = 40
MAX_EXPONENT = 40


def _to_decimal(value: Any) -> Decimal:
    """Accept a JSON number (parsed exactly) or a decimal string; nothing else."""
    if isinstance(value, str):
        text, value = value, parse_decimal(value)
        # Every amount and price of a batch comes through here, and as_tuple() below builds
        # a tuple of every digit. Plain notation of at most 40 characters has at most 40
        # digits and at most 39 after the point: within both bounds already.
        if len(text) <= MAX_SIGNIFICANT_DIGITS and "e" not in text and "E" not in text:
            return value
    elif isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    elif isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise ValueError("must be a decimal number, as a JSON number or string")
    if not value.is_finite():
        raise ValueError("must be finite (no NaN or Infinity)")
    digits = value.as_tuple()
    if len(digits.digits) > MAX_SIGNIFICANT_DIGITS or abs(digits.exponent) > MAX_EXPONENT:
        raise ValueError(
            f"must have at most {MAX_SIGNIFICANT_DIGITS} significant digits and an "
            f"exponent within ±{MAX_EXPONENT}"
        )
    return value


def _check_name(value: str) -> str:
    if not value.isprintable() or value != value.strip():
        raise ValueError("must be printable, without leading or trailing spaces")
    return value


# What the document promises is what the server accepts, so a client built from it is
# never refused. The server is wider in places the schema language cannot state
# exactly (any printable name, 40 significant digits in any notation); there the
# document names a plain subset and the description says the rest.
DECIMAL_IN_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^[+-]?[0-9]{1,20}(\.[0-9]{1,20})?$", "maxLength": 42},
        {"type": "integer", "minimum": -(10**40 - 1), "maximum": 10**40 - 1},
    ],
    "description": "An exact decimal, best sent as a string so no JSON library rounds it. "
    "The server also reads e-notation and JSON numbers exactly, up to 40 significant "
    "digits and an exponent within ±40; anything else is a 422.",
}
ExactNumber = Annotated[
    Decimal, BeforeValidator(_to_decimal), WithJsonSchema(DECIMAL_IN_SCHEMA, mode="validation")
]
NAME_ENDS = r"!-~\u00a1-\u00ac\u00ae-\u024f\u0400-\u04ff\u4e00-\u9fff"
NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": f"^[{NAME_ENDS}]([ {NAME_ENDS}]*[{NAME_ENDS}])?$",
    "description": "Up to 64 printable characters, no leading or trailing space. The pattern "
    "shows ASCII, Latin, Cyrillic and CJK; other printable letters are accepted too.",
}
# No control characters, no leading or trailing whitespace.
NAME_PATTERN = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
Name = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=NAME_PATTERN),
    AfterValidator(_check_name),
    WithJsonSchema(NAME_SCHEMA, mode="validation"),
]


def _moment(value: Any) -> datetime:
    """An ISO 8601 string with a timezone, read by the rule every entry shares."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with a timezone")
    return parse_moment(value)


MOMENT_SCHEMA = WithJsonSchema({"type": "string", "format": "date-time"}, mode="validation")
Timestamp = Annotated[datetime, BeforeValidator(_moment), MOMENT_SCHEMA]


def _snapshot_time(value: Any) -> datetime:
    """A moment as _moment reads it that ingest's rule allows for a snapshot."""
    return check_timestamp(_moment(value))


# Ingest's rule, checked here too so a refusal names its row and field; one validator,
# not two, as every row of a batch comes through.
SnapshotTime = Annotated[datetime, BeforeValidator(_snapshot_time), MOMENT_SCHEMA]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PositionIn(Strict):
    """One snapshot: what an account held of an asset at a moment."""

    account: Name
    asset: Name
    timestamp: SnapshotTime = Field(
        description="ISO 8601 with a timezone; from 1970 on, and no later than now plus "
        "the server's clock-skew allowance (default 5 minutes)"
    )
    amount: ExactNumber
    price: ExactNumber | None = None


class PositionBatch(Strict):
    """Up to 10,000 snapshots, stored all together or not at all."""

    positions: list[PositionIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResponse(Strict):
    inserted: int
    duplicates: int
    conflicts: int = 0


class PositionKey(Strict):
    account: str
    asset: str
    timestamp: str


class ConflictResponse(Strict):
    error: str = "conflict"
    message: str
    conflicts: list[PositionKey]


class FieldError(Strict):
    index: int | None = Field(description="Row in `positions`, when the error is in one")
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str
    message: str
    errors: list[FieldError] | None = None
    reference: str | None = None


class PositionOut(Strict):
    account: str
    asset: str
    timestamp: str = Field(description="ISO 8601, UTC")
    amount: str = Field(description="Exact decimal, as sent")
    price: str | None


class PositionPage(Strict):
    positions: list[PositionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class AssetOut(PositionOut):
    notional: str | None
    age_seconds: float


class AssetList(Strict):
    assets: list[AssetOut]


class ReconAssetOut(Strict):
    """One reconciled asset: its state as last evaluated, both sides as of one moment."""

    reconciliation: str
    left_account: str
    left_label: str
    right_account: str
    right_label: str
    left_asset: str
    right_asset: str
    multiplier: str = Field(description="Right amount x multiplier is compared with left")
    state: Literal["break", "unknown", "pending", "matched"] = Field(
        description="pending: beyond tolerance inside the grace period; unknown: a side is "
        "missing or older than its maximum age"
    )
    state_since: str
    as_of: str | None = Field(description="The moment both sides are compared at")
    left_amount: str | None
    left_at: str | None = Field(description="The left side's latest snapshot")
    right_amount: str | None = Field(description="As the right side reported it")
    right_compared: str | None = Field(description="right_amount x multiplier")
    right_at: str | None = Field(description="The right side's latest snapshot")
    difference: str | None = Field(description="right_compared - left_amount")
    difference_percent: str | None = Field(description="In percent of |left_amount|")
    alert_id: int | None


class ReconList(Strict):
    assets: list[ReconAssetOut] = Field(description="Breaks and unknowns first")
    failing: int = Field(description="How many assets are in break or unknown")


class HistoryQuery(Strict):
    asset: Name
    account: Name | None = None
    from_: Timestamp | None = Field(None, alias="from")
    to: Timestamp | None = None
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200)


class ReconQuery(Strict):
    state: Literal["break", "unknown", "pending", "matched"] | None = None
    reconciliation: str | None = Field(None, min_length=1, max_length=120)


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
