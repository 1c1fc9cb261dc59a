"""Channel changes by admins: a new target, disable and enable, delete — each audited."""

from decimal import Decimal

from app.admin.models import AuditEvent
from app.alerts.models import AlertRule, Channel
from app.auth.models import Role
from app.extensions import db
from tests.conftest import client_as, csrf_token_from

SECRET_URL = "https://hooks.example.com/services/T000/B000/old-secret"


def add_channel_with_rule(app):
    with app.app_context():
        channel = Channel(name="desk", kind="webhook", target=SECRET_URL)
        rule = AlertRule(
            name="cap", kind="position_above", threshold=Decimal(1), channels=[channel]
        )
        db.session.add_all([channel, rule])
        db.session.commit()
        return channel.id


def channel(app, channel_id):
    with app.app_context():
        return db.session.get(Channel, channel_id)


def events(app, action):
    with app.app_context():
        return (
            db.session.execute(db.select(AuditEvent).where(AuditEvent.action == action))
            .scalars()
            .all()
        )


def test_admin_changes_a_target_without_seeing_or_logging_the_old_one(app):
    channel_id = add_channel_with_rule(app)
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")
    new_url = "https://hooks.example.com/services/T000/B000/new-secret"

    response = admin.post(
        f"/alerts/channels/{channel_id}/target", data={"csrf_token": token, "target": new_url}
    )

    assert response.status_code == 302
    assert channel(app, channel_id).target == new_url
    html = admin.get("/alerts/channels").get_data(as_text=True)
    assert "new-secret" not in html and "old-secret" not in html
    [event] = events(app, "channel.update")
    assert "secret" not in str(event.detail)
    with app.app_context():
        assert [c.id for c in db.session.get(AlertRule, 1).channels] == [channel_id]


def test_a_bad_new_target_is_refused_and_the_old_one_kept(app):
    channel_id = add_channel_with_rule(app)
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")

    response = admin.post(
        f"/alerts/channels/{channel_id}/target",
        data={"csrf_token": token, "target": "file:///etc/passwd"},
    )

    assert response.status_code == 400
    assert "http:// or https://" in response.get_data(as_text=True)
    assert channel(app, channel_id).target == SECRET_URL
    assert events(app, "channel.update") == []


def test_disable_and_enable_a_channel(app):
    channel_id = add_channel_with_rule(app)
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")

    admin.post(f"/alerts/channels/{channel_id}/toggle", data={"csrf_token": token})
    assert channel(app, channel_id).enabled is False
    admin.post(f"/alerts/channels/{channel_id}/toggle", data={"csrf_token": token})
    assert channel(app, channel_id).enabled is True
    assert [e.detail["enabled"] for e in events(app, "channel.update")] == [False, True]


def test_delete_removes_the_channel_from_its_rules(app):
    channel_id = add_channel_with_rule(app)
    admin = client_as(app, Role.ADMIN)
    token = csrf_token_from(admin, "/alerts/channels")

    response = admin.post(f"/alerts/channels/{channel_id}/delete", data={"csrf_token": token})

    assert response.status_code == 302
    assert channel(app, channel_id) is None
    with app.app_context():
        assert db.session.get(AlertRule, 1).channels == []
    [event] = events(app, "channel.delete")
    assert event.detail == {"name": "desk"}


def test_only_admins_change_channels_and_csrf_is_required(app):
    channel_id = add_channel_with_rule(app)
    operator = client_as(app, Role.OPERATOR)
    token = csrf_token_from(operator, "/alerts/")
    for action in ("toggle", "delete", "target"):
        url = f"/alerts/channels/{channel_id}/{action}"
        assert operator.post(url, data={"csrf_token": token, "target": "x"}).status_code == 403
    admin = client_as(app, Role.ADMIN)
    assert admin.post(f"/alerts/channels/{channel_id}/delete").status_code == 400
    assert channel(app, channel_id) is not None
