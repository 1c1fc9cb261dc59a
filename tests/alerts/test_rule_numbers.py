"""Numbers typed into the alert forms: digits 0-9 only, as everywhere else."""

from decimal import Decimal

import pytest

from app.alerts.models import AlertRule, Silence
from app.auth.models import Role
from app.extensions import db
from tests.alerts.test_rule_pages import post_rule, rules
from tests.conftest import client_as, csrf_token_from

FULL_WIDTH_12 = "\uff11\uff12"
ARABIC_INDIC_12 = "\u0661\u0662"


@pytest.mark.parametrize(
    "field",
    [
        "threshold",
        "clear_threshold",
        "window_seconds",
        "pending_seconds",
        "repeat_interval_seconds",
    ],
)
@pytest.mark.parametrize("digits", [FULL_WIDTH_12, ARABIC_INDIC_12, "1" + FULL_WIDTH_12])
def test_rule_form_refuses_digits_of_other_scripts(app, field, digits):
    client = client_as(app, Role.OPERATOR)
    changes = {field: digits}
    if field == "window_seconds":
        changes["kind"] = "change_over_window"
    response = post_rule(client, **changes)
    assert response.status_code == 400  # the form again, with its error
    assert "digits 0-9" in response.get_data(as_text=True)
    assert rules(app) == []


def test_rule_form_still_takes_ascii_numbers(app):
    client = client_as(app, Role.OPERATOR)
    assert post_rule(client, threshold=" 12 ", pending_seconds="+5").status_code == 302
    (rule,) = rules(app)
    assert (str(rule.threshold), rule.pending_seconds) == ("12", 5)


def test_silence_form_refuses_hours_in_other_scripts(app):
    client = client_as(app, Role.OPERATOR)
    with app.app_context():
        db.session.add(AlertRule(name="cap", kind="position_above", threshold=Decimal(10)))
        db.session.commit()
        rule_id = db.session.execute(db.select(AlertRule.id)).scalar_one()
    token = csrf_token_from(client, "/alerts/silences")
    form = {
        "csrf_token": token,
        "rule_id": str(rule_id),
        "asset": "*",
        "account": "*",
        "hours": FULL_WIDTH_12,
        "comment": "maintenance",
        "action": "create",
    }
    response = client.post("/alerts/silences", data=form)
    assert "digits 0-9" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(db.select(Silence)).first() is None
