"""Policy, escalation and grouping pages: viewers look, operators edit policies, admins
group channels; every form needs its CSRF token."""

import pytest

from app.admin.models import AuditEvent
from app.alerts.models import AlertRule, Channel
from app.alerts.oncall_models import EscalationPolicy
from app.auth.models import Role
from app.extensions import db
from tests.alerts.oncall import Clock, add_channel, add_policy, add_rule, position, run_duty
from tests.alerts.test_rule_pages import post_rule
from tests.conftest import ParsedPage, client_as, csrf_token_from


def policies(app) -> list[EscalationPolicy]:
    with app.app_context():
        query = db.select(EscalationPolicy).order_by(EscalationPolicy.id)
        found = db.session.execute(query).scalars().all()
        for policy in found:
            policy.steps  # noqa: B018 (loaded while the session is open)
            for step in policy.steps:
                step.channels  # noqa: B018
        return found


def audited(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEvent.action).order_by(AuditEvent.id)))


def test_a_viewer_sees_policies_and_escalations_but_no_forms(app):
    channel = add_channel(app, "first")
    policy_id = add_policy(app, "desk", [([channel], 300)])
    client = client_as(app, Role.VIEWER)
    for path in ("/alerts/policies", f"/alerts/policies/{policy_id}", "/alerts/escalations"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert '<form method="post" action="/alerts/policies' not in response.text
    assert "first" in client.get(f"/alerts/policies/{policy_id}").text


@pytest.mark.parametrize(
    "path",
    [
        "/alerts/policies",
        "/alerts/policies/1",
        "/alerts/policies/1/steps",
        "/alerts/policies/1/steps/1/delete",
        "/alerts/policies/1/delete",
    ],
)
def test_a_viewer_cannot_change_a_policy(app, path):
    channel = add_channel(app, "first")
    add_policy(app, "desk", [([channel], 300)])
    client = client_as(app, Role.VIEWER)
    token = csrf_token_from(client, "/account")
    data = {"csrf_token": token, "name": "mine", "channels": str(channel), "wait_seconds": "60"}
    assert client.post(path, data=data).status_code == 403
    (policy,) = policies(app)
    assert (policy.name, len(policy.steps)) == ("desk", 1)


def test_an_operator_defines_a_policy_step_by_step(app):
    first, second = add_channel(app, "first"), add_channel(app, "second")
    client = client_as(app, Role.OPERATOR)
    token = csrf_token_from(client, "/alerts/policies")
    response = client.post(
        "/alerts/policies", data={"csrf_token": token, "name": "desk", "description": "day"}
    )
    assert response.status_code == 302
    (policy,) = policies(app)
    path = f"/alerts/policies/{policy.id}"
    assert response.headers["Location"] == path
    for channel, wait in ((first, "300"), (second, "600")):
        data = {"csrf_token": token, "channels": str(channel), "wait_seconds": wait}
        assert client.post(f"{path}/steps", data=data).status_code == 302
    (policy,) = policies(app)
    assert [(s.position, s.wait_seconds) for s in policy.steps] == [(0, 300), (1, 600)]
    assert [s.channels[0].name for s in policy.steps] == ["first", "second"]
    page = ParsedPage(client.get(path).text)
    assert [row["data-step"] for row in page.elements("tr") if "data-step" in row] == ["1", "2"]
    first_step = policy.steps[0].id
    assert (
        client.post(f"{path}/steps/{first_step}/delete", data={"csrf_token": token}).status_code
        == 302
    )
    (policy,) = policies(app)
    assert [(s.position, s.channels[0].name) for s in policy.steps] == [(0, "second")]
    assert client.post(f"{path}/delete", data={"csrf_token": token}).status_code == 302
    assert policies(app) == []
    assert audited(app)[-5:] == [
        "policy.create",
        "policy.update",
        "policy.update",
        "policy.update",
        "policy.delete",
    ]


def test_a_step_needs_a_channel_and_a_policy_a_unique_name(app):
    add_policy(app, "desk", [])
    client = client_as(app, Role.OPERATOR)
    token = csrf_token_from(client, "/alerts/policies")
    (policy,) = policies(app)
    data = {"csrf_token": token, "wait_seconds": "60"}
    assert client.post(f"/alerts/policies/{policy.id}/steps", data=data).status_code == 400
    data = {"csrf_token": token, "name": "desk"}
    response = client.post("/alerts/policies", data=data)
    assert response.status_code == 400 and "A policy with this name exists." in response.text
    (policy,) = policies(app)
    assert policy.steps == []


def test_policy_forms_without_a_csrf_token_change_nothing(app):
    channel = add_channel(app, "first")
    policy_id = add_policy(app, "desk", [([channel], 300)])
    client = client_as(app, Role.OPERATOR)
    assert client.post("/alerts/policies", data={"name": "new"}).status_code == 400
    data = {"channels": str(channel), "wait_seconds": "60"}
    assert client.post(f"/alerts/policies/{policy_id}/steps", data=data).status_code == 400
    assert client.post(f"/alerts/policies/{policy_id}/delete").status_code == 400
    (policy,) = policies(app)
    assert (policy.name, len(policy.steps)) == ("desk", 1)


def test_an_operator_gives_a_rule_a_policy_on_the_rule_form(app):
    policy_id = add_policy(app, "desk", [])
    client = client_as(app, Role.OPERATOR)
    form = client.get("/alerts/rules/new").text
    assert '<option selected value="0">none</option>' in form
    assert post_rule(client, escalation_policy_id=str(policy_id)).status_code == 302
    with app.app_context():
        rule = db.session.execute(db.select(AlertRule)).scalar_one()
        assert rule.escalation_policy_id == policy_id
    edit = client.get(f"/alerts/rules/{rule.id}/edit").text
    assert f'<option selected value="{policy_id}">desk</option>' in edit
    response = post_rule(client, f"/alerts/rules/{rule.id}/edit", escalation_policy_id="999")
    assert response.status_code == 400


def test_the_escalations_page_shows_each_alerts_step(app, monkeypatch):
    clock = Clock(monkeypatch)
    first, second = add_channel(app, "first"), add_channel(app, "second")
    policy_id = add_policy(app, "desk", [([first], 300), ([second], 0)])
    add_rule(app, escalation_policy_id=policy_id)
    position(app, clock, "BTC", "11")
    client = client_as(app, Role.VIEWER)
    page = client.get("/alerts/escalations").text
    assert "step 1 of 2" in page and "BTC too big" in page
    run_duty(app, clock.at(300))
    page = client.get("/alerts/escalations").text
    assert "step 2 of 2" in page and "none (last step)" in page


def test_only_admins_group_channels(app):
    channel = add_channel(app, "desk")
    for role in (Role.VIEWER, Role.OPERATOR):
        client = client_as(app, role)
        assert client.get("/alerts/grouping").status_code == 403
    admin = client_as(app, Role.ADMIN)
    assert admin.get("/alerts/grouping").status_code == 200
    token = csrf_token_from(admin, "/alerts/grouping")
    data = {
        "csrf_token": token,
        f"c{channel}-group_by": ["rule", "severity"],
        f"c{channel}-group_wait_seconds": "10",
        f"c{channel}-group_interval_seconds": "120",
        f"c{channel}-group_repeat_seconds": "7200",
    }
    assert admin.post(f"/alerts/channels/{channel}/grouping", data=data).status_code == 302
    with app.app_context():
        saved = db.session.get(Channel, channel)
        assert (saved.group_by, saved.group_wait_seconds, saved.group_repeat_seconds) == (
            "rule,severity",
            10,
            7200,
        )
    assert audited(app)[-1] == "channel.grouping"
    del data["csrf_token"]
    data[f"c{channel}-group_by"] = []
    assert admin.post(f"/alerts/channels/{channel}/grouping", data=data).status_code == 400
    with app.app_context():
        assert db.session.get(Channel, channel).group_by == "rule,severity"


def test_the_nav_bar_links_to_on_call(app):
    client = client_as(app, Role.VIEWER)
    links = [a.get("href") for a in ParsedPage(client.get("/").text).elements("a")]
    assert "/alerts/escalations" in links
