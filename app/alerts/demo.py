"""Limit rules for the demo desk, so that a first run shows the limits screen at work:
each rule is sized to the seeded positions, one of them already breached."""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from app.admin.audit import CLI_ACTOR, Action, record_event
from app.alerts.models import ANY, AlertRule, RuleKind, Severity
from app.extensions import db
from app.positions.models import notional


def round_to_two_digits(value: Decimal, *, up: bool) -> Decimal:
    """A limit a desk would write: 3.2336 → 4.1 (up) or 3.2 (down); 206,335.6 → 210,000."""
    step = Decimal(1).scaleb(value.adjusted() - 1)
    rounded = (value / step).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * step
    return rounded.quantize(min(step, Decimal(1)))


def demo_rules(latest) -> list[AlertRule]:
    """The demo's limits from its latest positions: a long limit with headroom on the
    largest position, one already breached on the smallest, a notional cap and the
    desk's gross exposure cap."""
    held = sorted((p for p in latest if p.amount > 0), key=lambda p: (p.amount, p.asset))
    priced = [p for p in latest if p.price is not None]
    if not held or not priced:
        return []
    largest, smallest = held[-1], held[0]
    largest_notional = max(abs(notional(p.amount, p.price)) for p in priced)
    gross: dict[str, Decimal] = {}
    for p in priced:
        gross[p.account] = gross.get(p.account, Decimal(0)) + abs(notional(p.amount, p.price))
    return [
        AlertRule(
            name=f"{largest.asset} long limit on {largest.account}",
            kind=RuleKind.POSITION_ABOVE,
            asset=largest.asset,
            account=largest.account,
            threshold=round_to_two_digits(largest.amount * Decimal("1.25"), up=True),
            severity=Severity.WARNING,
        ),
        AlertRule(
            name=f"{smallest.asset} long limit on {smallest.account}",
            kind=RuleKind.POSITION_ABOVE,
            asset=smallest.asset,
            account=smallest.account,
            threshold=round_to_two_digits(smallest.amount * Decimal("0.9"), up=False),
            severity=Severity.CRITICAL,
            description="Breached in the demo data, so the alerts page has one to acknowledge.",
        ),
        AlertRule(
            name="Notional cap per position",
            kind=RuleKind.NOTIONAL_ABOVE,
            asset=ANY,
            account=ANY,
            threshold=round_to_two_digits(largest_notional * Decimal("1.5"), up=True),
            severity=Severity.WARNING,
        ),
        AlertRule(
            name="Gross exposure per account",
            kind=RuleKind.GROSS_EXPOSURE_ABOVE,
            asset=ANY,
            account=ANY,
            threshold=round_to_two_digits(max(gross.values()) * Decimal("1.2"), up=True),
            severity=Severity.CRITICAL,
        ),
    ]


def add_demo_rules(latest) -> list[AlertRule]:
    """Add the demo's limit rules to the session, audited as the CLI's; the caller commits."""
    rules = demo_rules(latest)
    for rule in rules:
        db.session.add(rule)
        db.session.flush()
        record_event(
            Action.RULE_CREATE,
            target=f"rule:{rule.id}",
            detail={"name": rule.name, "kind": rule.kind, "enabled": rule.enabled},
            actor=CLI_ACTOR,
        )
    return rules
