"""Numbers as a trader reads them: separators, a precision per asset, units, signs.

Every filter returns `<span class="num" title="<exact stored digits>">text</span>`:
the page rounds, the title (hover) keeps what the trading system sent, and CSV and
the API never pass through here, so they stay exact.

- `{{ amount|quantity(asset) }}` → `1,234.5679 BTC`. Decimals: the asset's entry in
  DISPLAY_PRECISION, else the data's own default: the largest number of significant
  decimals (trailing zeros dropped) among the asset's latest amounts, at most
  MAX_DEFAULT_PRECISION. So every row of an asset shows the same number of decimals
  and none of the digits held now is hidden. An asset with no latest row (deleted
  since) shows the value's own significant decimals, capped the same way.
- `{{ notional|money }}` → `311,500.00 USD`: QUOTE_PRECISION decimals, QUOTE_CURRENCY.
- `{{ price|price }}` → `1,234.5 USD`: separators only, every stored decimal kept.
- `{{ ratio|percent }}` → `87.5 %`: a ratio (0.875), shown as a percentage to one
  decimal (utilisation of a limit).

`unit=False` leaves the unit out (a column whose header names it).

Rounding is half-even (banker's), on Decimals only: a float is refused, because
its digits are not the ones stored. A negative value is shown with a minus sign
(U+2212) and the class "neg", also when it rounds to zero: -0.00001 at two
decimals reads "(U+2212)0.00", a short position, never flat-looking "0.00". The title
keeps its exact digits. A missing value (None: a position with no price has no
notional) reads as an em dash with the class "missing".
"""

from decimal import ROUND_HALF_EVEN, Decimal

from flask import Flask, current_app, g
from jinja2 import pass_context
from markupsafe import Markup, escape
from sqlalchemy import select

from app.db_types import EXACT, format_decimal
from app.extensions import db
from app.positions.models import LatestPosition

MAX_DEFAULT_PRECISION = 8
PERCENT_PRECISION = 1
MINUS = "\u2212"
MISSING = Markup('<span class="num missing">\u2014</span>')
# Where a request keeps its DisplaySettings: on flask.g, and in each template's context
# (the filters run once per number: a dictionary lookup there, not two proxy lookups).
SETTINGS_KEY = "display_settings"


def significant_decimals(value: Decimal) -> int:
    """How many decimals the value needs: 1.500 → 1, 2E+3 → 0, 0.000012 → 6."""
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: nothing to count
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0") or "0")
    return max(0, -(exponent + trailing))


def latest_amount_decimals() -> dict[str, int]:
    """Per asset, the largest significant decimals of its latest amounts (capped)."""
    precisions: dict[str, int] = {}
    for asset, amount in db.session.execute(select(LatestPosition.asset, LatestPosition.amount)):
        decimals = min(significant_decimals(amount), MAX_DEFAULT_PRECISION)
        precisions[asset] = max(precisions.get(asset, 0), decimals)
    return precisions


class DisplaySettings:
    """What the number filters read, for one request: the configuration, and the
    default precisions (queried on the first amount shown, then kept)."""

    def __init__(self, config) -> None:
        self.configured: dict = config.get("DISPLAY_PRECISION") or {}
        self.quote: str = config.get("QUOTE_CURRENCY", "USD")
        self.quote_places: int = config.get("QUOTE_PRECISION", 2)
        self._defaults: dict[str, int] | None = None

    def precision(self, asset: str, value: Decimal | None = None) -> int:
        """The decimals an amount of `asset` is shown with (see the module's docstring)."""
        configured = self.configured.get(asset)
        if configured is not None:
            return int(configured)
        if self._defaults is None:
            self._defaults = latest_amount_decimals()
        precision = self._defaults.get(asset)
        if precision is None:
            precision = 0 if value is None else significant_decimals(value)
        return min(precision, MAX_DEFAULT_PRECISION)


def display_settings() -> DisplaySettings:
    """This request's DisplaySettings, made on first use."""
    settings = g.get(SETTINGS_KEY)
    if settings is None:
        settings = g.setdefault(SETTINGS_KEY, DisplaySettings(current_app.config))
    return settings


def asset_precision(asset: str, value: Decimal | None = None) -> int:
    """The decimals an amount of `asset` is shown with in this request."""
    return display_settings().precision(asset, value)


def _decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        # A float's digits are not the stored ones: round nothing through it.
        raise TypeError(f"display filters take Decimals, not {type(value).__name__}")
    return Decimal(value)


def grouped(value: Decimal, places: int | None) -> str:
    """The value with thousands separators and a minus sign, rounded half-even to
    `places` decimals (None: every stored decimal kept)."""
    rounded = value
    if places is not None:
        rounded = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN, EXACT)
    # The sign is the stored value's: a short rounded to zero stays a short, -0 is flat.
    text = format(rounded.copy_abs(), ",f")
    return MINUS + text if value < 0 else text


def _span(value: Decimal, text: str, unit: str | None, title: str | None = None) -> Markup:
    # The number, its title and the sign are text made here from a Decimal (digits,
    # ",", ".", "-", "\u2212", " %"); only the unit (an asset name) comes from outside.
    css = "num neg" if value < 0 else "num"
    suffix = f" {escape(unit)}" if unit else ""
    exact_text = title or format_decimal(value)
    return Markup(f'<span class="{css}" title="{exact_text}">{text}{suffix}</span>')  # noqa: S704


def quantity(value, asset: str, unit: bool = True) -> Markup:
    """An amount of `asset`, at the asset's display precision, with its unit."""
    return _quantity(display_settings(), value, asset, unit)


def money(value, unit: bool = True) -> Markup:
    """A notional in the quote currency, at QUOTE_PRECISION decimals."""
    return _money(display_settings(), value, unit)


def price(value, unit: bool = True) -> Markup:
    """A price in the quote currency, every stored decimal kept."""
    return _price(display_settings(), value, unit)


def percent(value) -> Markup:
    """A ratio as a percentage to one decimal: 0.875 → 87.5 %."""
    if value is None:
        return MISSING
    hundredths = EXACT.multiply(_decimal(value), Decimal(100))
    text = grouped(hundredths, PERCENT_PRECISION)
    return _span(hundredths, text, "%", title=f"{format_decimal(hundredths)} %")


def _quantity(settings: DisplaySettings, value, asset: str, unit: bool) -> Markup:
    if value is None:
        return MISSING
    value = _decimal(value)
    text = grouped(value, settings.precision(asset, value))
    return _span(value, text, asset if unit else None)


def _money(settings: DisplaySettings, value, unit: bool) -> Markup:
    if value is None:
        return MISSING
    value = _decimal(value)
    return _span(value, grouped(value, settings.quote_places), settings.quote if unit else None)


def _price(settings: DisplaySettings, value, unit: bool) -> Markup:
    if value is None:
        return MISSING
    value = _decimal(value)
    return _span(value, grouped(value, None), settings.quote if unit else None)


def _settings_in(context) -> DisplaySettings:
    settings = context.get(SETTINGS_KEY)
    return settings if settings is not None else display_settings()


@pass_context
def quantity_filter(context, value, asset: str, unit: bool = True) -> Markup:
    return _quantity(_settings_in(context), value, asset, unit)


@pass_context
def money_filter(context, value, unit: bool = True) -> Markup:
    return _money(_settings_in(context), value, unit)


@pass_context
def price_filter(context, value, unit: bool = True) -> Markup:
    return _price(_settings_in(context), value, unit)


def register_display_filters(app: Flask) -> None:
    """Make quantity, money, price and percent available to every template."""
    app.context_processor(lambda: {SETTINGS_KEY: display_settings()})
    app.add_template_filter(quantity_filter, "quantity")
    app.add_template_filter(money_filter, "money")
    app.add_template_filter(price_filter, "price")
    app.add_template_filter(percent, "percent")
