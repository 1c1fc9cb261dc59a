"""Numbers as pages show them: separators, precision per asset, units, signs."""

from decimal import Decimal

import pytest
from flask import render_template_string

from app import create_app
from app.display import grouped, money, percent, price, quantity, significant_decimals
from tests.conftest import _testing, build_app
from tests.positions.helpers import snap, store


def shown(app, value, asset="BTC", **kwargs):
    with app.test_request_context():
        return str(quantity(value, asset, **kwargs))


@pytest.fixture
def precise_app(sqlite_url):
    """BTC shown with 4 decimals, ETH with 0, everything else from the data."""
    from app.extensions import db

    app = build_app(sqlite_url, DISPLAY_PRECISION={"BTC": 4, "ETH": 0})
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(
    "value, decimals",
    [("1.500", 1), ("2E+3", 0), ("0.000012", 6), ("125957.851552", 6), ("0", 0), ("-7.10", 1)],
)
def test_significant_decimals_ignore_trailing_zeros(value, decimals):
    assert significant_decimals(Decimal(value)) == decimals


@pytest.mark.parametrize(
    "value, text",
    [
        ("125957.851552", "125,957.8516"),
        ("1234567.00005", "1,234,567.0000"),  # half-even: 0.00005 → 0.0000
        ("0.00015", "0.0002"),  # half-even: 1 is odd → up
        ("0.00025", "0.0002"),  # half-even: 2 is even → stays
        ("311500.0", "311,500.0000"),
        ("999.99995", "1,000.0000"),  # carries into a new group
        ("12", "12.0000"),
    ],
)
def test_quantity_rounds_half_even_to_the_configured_precision(precise_app, value, text):
    assert shown(precise_app, Decimal(value)) == (
        f'<span class="num" title="{value}">{text} BTC</span>'
    )


def test_quantity_without_unit_and_with_zero_decimals(precise_app):
    assert shown(precise_app, Decimal("2500.5"), "ETH", unit=False) == (
        '<span class="num" title="2500.5">2,500</span>'
    )
    assert shown(precise_app, Decimal("2501.5"), "ETH", unit=False) == (
        '<span class="num" title="2501.5">2,502</span>'
    )


def test_negative_quantity_has_a_minus_sign_and_the_neg_class(precise_app):
    assert shown(precise_app, Decimal("-1234.56789")) == (
        '<span class="num neg" title="-1234.56789">\u22121,234.5679 BTC</span>'
    )


def test_a_short_rounded_to_zero_still_reads_as_a_short(precise_app):
    # -0.00001 BTC at 4 decimals is minus "0.0000": a short, never a flat-looking "0.0000".
    assert shown(precise_app, Decimal("-0.00001")) == (
        '<span class="num neg" title="-0.00001">\u22120.0000 BTC</span>'
    )


def test_a_stored_negative_zero_is_flat(precise_app):
    assert shown(precise_app, Decimal("-0")) == '<span class="num" title="-0">0.0000 BTC</span>'


def test_default_precision_is_the_most_decimals_among_the_latest_amounts(app):
    store(
        app,
        [
            snap(account="a", asset="SOL", amount="311500.0"),
            snap(account="b", asset="SOL", amount="-12.125"),
            snap(account="c", asset="SOL", amount="4.10"),
            snap(account="a", asset="DOGE", amount="0.123456789012"),
        ],
    )
    with app.test_request_context():
        assert str(quantity(Decimal("311500.0"), "SOL")) == (
            '<span class="num" title="311500.0">311,500.000 SOL</span>'
        )
        assert str(quantity(Decimal("-12.125"), "SOL", unit=False)) == (
            '<span class="num neg" title="-12.125">\u221212.125</span>'
        )
        # Capped at 8 decimals, rounded half-even: ...89012 → ...8901.
        assert str(quantity(Decimal("0.123456789012"), "DOGE")) == (
            '<span class="num" title="0.123456789012">0.12345679 DOGE</span>'
        )
        # No latest row for this asset: the value's own decimals.
        assert str(quantity(Decimal("1.25"), "GONE")) == (
            '<span class="num" title="1.25">1.25 GONE</span>'
        )


def test_default_precision_is_read_once_a_request(app):
    store(app, [snap(asset="SOL", amount="1.5")])
    with app.test_request_context():
        assert "1.0 SOL" in str(quantity(Decimal("1"), "SOL"))
        # A snapshot stored during the request does not change what this page shows.
        store(app, [snap(asset="SOL", amount="1.125", minutes=1)])
        assert "1.0 SOL" in str(quantity(Decimal("1"), "SOL"))
    with app.test_request_context():
        assert "1.000 SOL" in str(quantity(Decimal("1"), "SOL"))


def test_configured_precision_comes_from_the_environment_as_json(sqlite_url, monkeypatch):
    monkeypatch.setenv("TRADINGMONITOR_DISPLAY_PRECISION", '{"BTC": 2}')
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = _testing(sqlite_url)
    del settings["DISPLAY_PRECISION"]  # overrides win over the environment
    app = create_app({**settings, "READ_ENVIRONMENT": True})
    assert app.config["DISPLAY_PRECISION"] == {"BTC": 2}


def test_asset_names_are_escaped_in_the_unit(precise_app):
    assert shown(precise_app, Decimal("1"), "<b>") == (
        '<span class="num" title="1">1 &lt;b&gt;</span>'
    )


def test_floats_are_refused(precise_app):
    with pytest.raises(TypeError):
        shown(precise_app, 0.1)


def test_money_shows_quote_precision_and_currency(app):
    with app.test_request_context():
        assert str(money(Decimal("311500.0"))) == (
            '<span class="num" title="311500.0">311,500.00 USD</span>'
        )
        assert str(money(Decimal("-18894677.75"), unit=False)) == (
            '<span class="num neg" title="-18894677.75">\u221218,894,677.75</span>'
        )
        assert str(money(Decimal("0.125"))) == (
            '<span class="num" title="0.125">0.12 USD</span>'  # half-even
        )
        assert str(money(Decimal("0.135"))) == '<span class="num" title="0.135">0.14 USD</span>'


def test_money_follows_the_configured_currency(sqlite_url):
    app = build_app(sqlite_url, QUOTE_CURRENCY="EUR", QUOTE_PRECISION=0)
    with app.test_request_context():
        assert str(money(Decimal("1234.5"))) == '<span class="num" title="1234.5">1,234 EUR</span>'


def test_price_keeps_every_stored_decimal(app):
    with app.test_request_context():
        assert str(price(Decimal("64123.456789"))) == (
            '<span class="num" title="64123.456789">64,123.456789 USD</span>'
        )
        assert str(price(Decimal("1E+3"), unit=False)) == (
            '<span class="num" title="1000">1,000</span>'
        )


def test_percent_shows_a_ratio_to_one_decimal(app):
    with app.test_request_context():
        assert str(percent(Decimal("0.875"))) == (
            '<span class="num" title="87.500 %">87.5 %</span>'
        )
        assert str(percent(Decimal("1.23456"))) == (
            '<span class="num" title="123.45600 %">123.5 %</span>'
        )
        assert str(percent(Decimal("-0.0125"))) == (
            '<span class="num neg" title="-1.2500 %">\u22121.2 %</span>'  # half-even
        )


def test_missing_values_read_as_a_dash(app):
    with app.test_request_context():
        expected = '<span class="num missing">\u2014</span>'
        assert str(money(None)) == str(price(None)) == str(quantity(None, "BTC")) == expected
        assert str(percent(None)) == expected


def test_templates_use_the_filters(precise_app):
    with precise_app.test_request_context():
        html = render_template_string(
            "{{ a|quantity('BTC') }}|{{ n|money }}|{{ p|price(unit=False) }}|{{ r|percent }}",
            a=Decimal("1234.56789"),
            n=Decimal("-5"),
            p=Decimal("1000.5"),
            r=Decimal("0.5"),
        )
    assert html == (
        '<span class="num" title="1234.56789">1,234.5679 BTC</span>|'
        '<span class="num neg" title="-5">\u22125.00 USD</span>|'
        '<span class="num" title="1000.5">1,000.5</span>|'
        '<span class="num" title="50.0 %">50.0 %</span>'
    )


def test_templates_read_the_precision_once_a_request_too(app):
    store(app, [snap(asset="SOL", amount="1.5")])
    with app.test_request_context():
        template = "{{ v|quantity('SOL') }}"
        assert "1.0 SOL" in render_template_string(template, v=Decimal("1"))
        store(app, [snap(asset="SOL", amount="1.125", minutes=1)])
        # The page's second template (a partial, the layout) agrees with its first.
        assert "1.0 SOL" in render_template_string(template, v=Decimal("1"))
    with app.test_request_context():
        assert "1.000 SOL" in render_template_string(template, v=Decimal("1"))


def test_every_digit_of_a_long_short_is_shown():
    # 38 significant digits, as stored: none rounded away on the page.
    value = Decimal("-1234567890123456789012345678.9012345678")
    assert grouped(value, 10) == "\u22121,234,567,890,123,456,789,012,345,678.9012345678"
    assert grouped(value, None) == grouped(value, 10)
