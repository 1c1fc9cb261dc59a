"""What evaluation reads: batched window-ago lookups and the latest rows per rule."""

from datetime import timedelta
from decimal import Decimal

from app.alerts import values
from app.alerts.models import ANY, AlertRule, RuleKind
from app.alerts.state import is_breached
from app.extensions import db
from app.positions.models import Position
from tests.positions.helpers import T0, snap, store


def one_lookup(account, asset, moment):
    """The amount at or before a moment, one query per key (the reference)."""
    return db.session.execute(
        db.select(Position.amount)
        .where(Position.account == account, Position.asset == asset, Position.timestamp <= moment)
        .order_by(Position.timestamp.desc())
        .limit(1)
    ).scalar_one_or_none()


def test_batched_window_lookups_match_one_query_per_key(any_app, monkeypatch):
    store(
        any_app,
        [
            snap(account=account, asset=asset, minutes=minutes, amount=f"{n}.{minutes}")
            for n, (account, asset) in enumerate([("a", "X"), ("a", "Y"), ("b", "X")])
            for minutes in (0, 5, 10)
        ],
    )
    # Fifteen keys in statements of four: the short last one is padded.
    monkeypatch.setattr(values, "WINDOW_LOOKUP_CHUNK", 4)
    keys = {
        (account, asset, T0 + timedelta(minutes=minutes, microseconds=micros))
        for account, asset in [("a", "X"), ("a", "Y"), ("b", "X"), ("c", "Z")]
        for minutes, micros in [(-1, 0), (5, 0), (5, -1), (7, 0)]
        if (account, minutes) != ("c", 7)
    }
    with any_app.app_context():
        found = values.amounts_before(keys)
        expected = {key: one_lookup(*key) for key in keys}
    assert found == expected
    assert found[("a", "Y", T0 + timedelta(minutes=5))] == Decimal("1.5")
    assert found[("a", "Y", T0 + timedelta(minutes=5, microseconds=-1))] == Decimal("1.0")
    assert found[("b", "X", T0 - timedelta(minutes=1))] is None


def test_rule_values_read_once_serve_every_rule(any_app):
    store(
        any_app,
        [
            snap(account="a", asset="X", minutes=0, amount="1", price="10"),
            snap(account="a", asset="X", minutes=10, amount="4", price="10"),
            snap(account="a", asset="Y", minutes=10, amount="-2", price="100"),
            snap(account="b", asset="X", minutes=10, amount="7", price=None),
        ],
    )
    rules = [
        AlertRule(kind=RuleKind.POSITION_ABOVE, account=ANY, asset="X", threshold=Decimal(0)),
        AlertRule(kind=RuleKind.NOTIONAL_ABOVE, account="a", asset=ANY, threshold=Decimal(0)),
        AlertRule(
            kind=RuleKind.GROSS_EXPOSURE_ABOVE, account=ANY, asset="X", threshold=Decimal(0)
        ),
        AlertRule(
            kind=RuleKind.CHANGE_OVER_WINDOW,
            account="a",
            asset="X",
            threshold=Decimal(0),
            window_seconds=600,
        ),
    ]
    now = T0 + timedelta(minutes=11)
    with any_app.app_context():
        readings = values.read(rules)
        together = [values.rule_values(rule, now, readings=readings) for rule in rules]
        alone = [values.rule_values(rule, now) for rule in rules]
    assert together == alone
    assert together == [
        {("a", "X"): Decimal(4), ("b", "X"): Decimal(7)},
        {("a", "X"): Decimal(40), ("a", "Y"): Decimal(200)},
        {("a", ANY): Decimal(240)},  # gross exposure spans every asset; b has no price
        {("a", "X"): Decimal(3)},
    ]


# Amounts arrive with up to 40 significant digits; Python's abs() and quantize() round
# to the default context's 28, which can move a value across its limit.
LONG = "1234567890123456789012345678.9012345678"


def test_a_fall_is_compared_with_its_limit_at_every_stored_digit():
    rule = AlertRule(
        kind=RuleKind.CHANGE_OVER_WINDOW, threshold=Decimal(LONG[:-1] + "9"), window_seconds=60
    )
    fall = Decimal("-" + LONG)  # just inside the limit; abs() would round it to ...679, beyond

    assert not is_breached(rule, fall, active=False)
    assert is_breached(rule, Decimal("-" + LONG[:-1] + "91"), active=False)


def test_notional_size_keeps_every_digit_of_a_short():
    assert values.notional_size(Decimal("-" + LONG), Decimal(1)) == Decimal(LONG)


def test_a_change_in_percent_of_a_tiny_amount_is_exact_however_large():
    rule = AlertRule(
        kind=RuleKind.CHANGE_OVER_WINDOW,
        threshold=Decimal(1),
        window_seconds=60,
        change_percent=True,
    )
    change = values.window_change(rule, Decimal("1E+30"), Decimal("-1E-30"))

    # (1E+30 + 1E-30) / 1E-30 * 100: 1E+62 + 100, written out.
    assert change == Decimal("1" + "0" * 59 + "100")
