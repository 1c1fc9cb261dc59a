"""Escalation policies: the next step is paged when a step's wait ends unacknowledged;
acknowledging stops it, resolving ends it; two workers take a step once."""

import threading

import pytest

from app.admin.audit import Action
from app.admin.models import AuditEvent
from app.alerts import escalation
from app.alerts.models import Alert, Silence
from app.auth.models import Role
from app.extensions import db
from tests.alerts.oncall import (
    Clock,
    add_channel,
    add_policy,
    add_rule,
    outbox,
    position,
    run_duty,
)
from tests.conftest import client_as, csrf_token_from


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def on_call(app, bare=()) -> dict[str, int]:
    """Channels first, second, third; a policy paging them 5 and 10 minutes apart; a rule
    on any asset with the policy (and `bare` channels of its own)."""
    ids = {name: add_channel(app, name) for name in ("first", "second", "third", *bare)}
    policy = add_policy(
        app, "desk", [([ids["first"]], 300), ([ids["second"]], 600), ([ids["third"]], 0)]
    )
    add_rule(app, channel_ids=[ids[name] for name in bare], escalation_policy_id=policy)
    return ids


def paged(app, ids) -> list[tuple[str, str]]:
    """(channel name, kind) of every message queued, in order."""
    names = {channel_id: name for name, channel_id in ids.items()}
    return [(names[n.channel_id], n.kind) for n in outbox(app)]


def the_alert(app) -> Alert:
    with app.app_context():
        return db.session.execute(db.select(Alert)).scalar_one()


def steps_audited(app) -> list[int]:
    with app.app_context():
        query = db.select(AuditEvent).where(AuditEvent.action == Action.ALERT_ESCALATE)
        return [e.detail["step"] for e in db.session.scalars(query.order_by(AuditEvent.id))]


def test_firing_pages_the_first_step_and_each_wait_pages_the_next(app, clock):
    ids = on_call(app)
    position(app, clock, "BTC", "11")
    assert paged(app, ids) == [("first", "firing")]
    assert the_alert(app).escalation_step == 0
    assert run_duty(app, clock.at(299)) == 0
    assert run_duty(app, clock.at(300)) == 1
    assert paged(app, ids)[-1] == ("second", "firing")
    assert run_duty(app, clock.at(899)) == 0
    assert run_duty(app, clock.at(900)) == 1
    assert paged(app, ids)[-1] == ("third", "firing")
    # The last step has no step after it: nothing more is paged.
    assert run_duty(app, clock.at(99_999)) == 0
    assert len(outbox(app)) == 3
    assert steps_audited(app) == [1, 2, 3]
    assert the_alert(app).escalation_next_at is None


def test_a_rule_with_a_policy_keeps_its_bare_channels(app, clock):
    ids = on_call(app, bare=("desk-room",))
    position(app, clock, "BTC", "11")
    assert sorted(paged(app, ids)) == [("desk-room", "firing"), ("first", "firing")]


def test_acknowledging_stops_the_escalation(app, clock):
    ids = on_call(app)
    position(app, clock, "BTC", "11")
    alert_id = the_alert(app).id
    client = client_as(app, Role.OPERATOR)
    token = csrf_token_from(client, f"/alerts/{alert_id}")
    response = client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 302
    assert run_duty(app, clock.at(10_000)) == 0
    assert paged(app, ids) == [("first", "firing")]
    assert steps_audited(app) == [1]


def test_resolving_ends_the_escalation_and_every_step_paged_hears_it(app, clock):
    ids = on_call(app)
    position(app, clock, "BTC", "11")
    run_duty(app, clock.at(300))
    clock.at(400)
    position(app, clock, "BTC", "1")
    assert paged(app, ids)[2:] == [("first", "resolved"), ("second", "resolved")]
    assert the_alert(app).escalation_next_at is None
    assert run_duty(app, clock.at(10_000)) == 0
    assert ("third", "firing") not in paged(app, ids)


def test_a_new_firing_starts_again_at_the_first_step(app, clock):
    ids = on_call(app)
    position(app, clock, "BTC", "11")
    run_duty(app, clock.at(300))
    clock.at(400)
    position(app, clock, "BTC", "1")
    clock.at(500)
    position(app, clock, "BTC", "12")
    assert paged(app, ids)[-1] == ("first", "firing")
    assert the_alert(app).escalation_step == 0
    assert run_duty(app, clock.at(799)) == 0
    assert run_duty(app, clock.at(800)) == 1
    assert paged(app, ids)[-1] == ("second", "firing")


def test_each_step_is_on_the_alerts_timeline(app, clock):
    on_call(app)
    position(app, clock, "BTC", "11")
    run_duty(app, clock.at(300))
    client = client_as(app, Role.VIEWER)
    html = client.get(f"/alerts/{the_alert(app).id}").get_data(as_text=True)
    timeline = html.split('id="timeline"')[1]
    assert "escalation: step 1 of policy desk paged" in timeline
    assert "escalation: step 2 of policy desk paged" in timeline
    assert "step 3" not in timeline
    facts = html.split('data-testid="escalation"')[1].split("</div>")[0]
    assert "step 2</a>" in facts and "next step" in facts


def test_two_workers_advance_a_step_once(any_app, clock):
    ids = on_call(any_app)
    position(any_app, clock, "BTC", "11")
    now = clock.at(300)
    with any_app.app_context():
        ((alert_id, step),) = escalation.due(now)
    start = threading.Barrier(2)
    results = []

    def advance():
        with any_app.app_context():
            start.wait(10)
            results.append(escalation.advance(alert_id, step, now))
            db.session.commit()

    threads = [threading.Thread(target=advance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, True]
    assert paged(any_app, ids) == [("first", "firing"), ("second", "firing")]
    assert steps_audited(any_app) == [1, 2]


def test_a_silence_holds_the_escalation_until_it_ends(app, clock):
    ids = on_call(app)
    position(app, clock, "BTC", "11")
    with app.app_context():
        db.session.add(
            Silence(
                starts_at=clock.at(100),
                ends_at=clock.at(1000),
                comment="maintenance",
            )
        )
        db.session.commit()
    assert run_duty(app, clock.at(300)) == 0
    assert run_duty(app, clock.at(999)) == 0
    assert paged(app, ids) == [("first", "firing")]
    assert run_duty(app, clock.at(1000)) == 1
    assert paged(app, ids)[-1] == ("second", "firing")
