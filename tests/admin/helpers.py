"""Reading the audit log and posting admin forms in tests."""

import json

from app.admin.models import AuditEvent
from app.auth.models import User
from app.extensions import db
from tests.conftest import csrf_token_from


def events(app, action=None) -> list[AuditEvent]:
    with app.app_context():
        query = db.select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        rows = list(db.session.execute(query).scalars())
        db.session.expunge_all()
        return rows


def only_event(app, action, *secrets) -> AuditEvent:
    """The one event with `action`; none of `secrets` appears anywhere in it."""
    rows = events(app, action)
    assert len(rows) == 1, [(e.action, e.target) for e in rows]
    event = rows[0]
    text = json.dumps(
        [event.actor_name, event.target, event.detail, event.user_agent], default=str
    )
    for secret in secrets:
        assert secret not in text
    return event


def user(app, username) -> User:
    with app.app_context():
        found = db.session.execute(db.select(User).where(User.username == username)).scalar_one()
        db.session.expunge(found)
        return found


def post(client, path, page="/admin/users", **data):
    """POST a form with the CSRF token of `page`."""
    return client.post(path, data={"csrf_token": csrf_token_from(client, page), **data})
