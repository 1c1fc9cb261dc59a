"""What a chart draws over an asset's series: limit lines and the spans alerts fired.

The chart document of `/positions/<asset>/series` carries both, and a page can hand a
chart the same shape through `data-overlay-url` ({"limits": [...], "spans": [...]}).
"""

from datetime import datetime

from sqlalchemy import select

from app.alerts.models import ANY, Alert, AlertRule, AlertState, AlertTransition, RuleKind
from app.alerts.queries import limit_rules
from app.db_types import format_decimal
from app.extensions import db
from app.positions.limits import metric_of

# Transitions read to rebuild the firing spans of a chart: the newest this many.
MAX_SPAN_TRANSITIONS = 2000


def rule_lines(rule: AlertRule) -> list[dict]:
    """A rule's limit line, and its clear line when it has one."""
    scope = "" if rule.account == ANY else f" · {rule.account}"
    line = {"metric": metric_of(rule), "rule_id": rule.id}
    lines = [
        {
            **line,
            "label": f"{rule.name}{scope}",
            "value": format_decimal(rule.threshold),
            "kind": "limit",
        }
    ]
    if rule.clear_threshold is not None:
        lines.append(
            {
                **line,
                "label": f"{rule.name}{scope}",
                "value": format_decimal(rule.clear_threshold),
                "kind": "clear",
            }
        )
    return lines


def limit_lines(asset: str, *, account: str | None = None, rule_id: int | None = None):
    """The lines of the enabled limit rules that apply to the asset (and account).

    Gross exposure caps a whole account, not one asset's notional: it is drawn only
    when asked for by `rule_id`.
    """
    lines = []
    for rule in limit_rules(rule_id):
        account_wide = rule.kind == RuleKind.GROSS_EXPOSURE_ABOVE
        if account_wide and rule_id is None:
            continue
        if not account_wide and rule.asset not in (ANY, asset):
            continue
        if account and rule.account not in (ANY, account):
            continue
        lines.extend(rule_lines(rule))
    return lines


def firing_spans(
    asset: str,
    *,
    account: str | None = None,
    rule_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict]:
    """When the asset's alerts were firing, as spans overlapping [start, end).

    A span still open has "to": null. Built from the stored transitions (the newest
    MAX_SPAN_TRANSITIONS), oldest first.
    """
    query = (
        select(AlertTransition.alert_id, AlertTransition.to_state, AlertTransition.at)
        .add_columns(Alert.account, AlertRule.name)
        .join(Alert, AlertTransition.alert_id == Alert.id)
        .join(AlertRule, Alert.rule_id == AlertRule.id)
        .where(Alert.asset == asset)
    )
    if account:
        query = query.where(Alert.account == account)
    if rule_id is not None:
        query = query.where(Alert.rule_id == rule_id)
    if end is not None:
        query = query.where(AlertTransition.at < end)
    query = query.order_by(AlertTransition.at.desc(), AlertTransition.id.desc())
    rows = list(db.session.execute(query.limit(MAX_SPAN_TRANSITIONS)))
    rows.reverse()
    opened: dict[int, dict] = {}
    spans = []
    for alert_id, to_state, at, alert_account, rule_name in rows:
        if to_state == AlertState.FIRING and alert_id not in opened:
            opened[alert_id] = {
                "from": at.isoformat(),
                "to": None,
                "label": f"{rule_name} · {alert_account}",
                "kind": "firing",
                "_from": at,
            }
            spans.append(opened[alert_id])
        elif to_state != AlertState.FIRING and alert_id in opened:
            span = opened.pop(alert_id)
            span["to"] = at.isoformat()
            span["_to"] = at
    found = []
    for span in spans:
        ended = span.pop("_to", None)
        began = span.pop("_from")
        if start is not None and ended is not None and ended <= start:
            continue
        if end is not None and began >= end:
            continue
        found.append(span)
    return found
