"""record_event and the hooks: every audited action writes one row, never a secret."""

from datetime import UTC, datetime, timedelta

import pytest

from app.admin.audit import Action, record_event
from app.admin.models import AuditEvent
from app.alerts.models import Silence
from app.auth.models import Role
from app.extensions import db
from app.positions.cli_support import BATCH_SIZE
from tests.admin.helpers import events, only_event, post, user
from tests.alerts.helpers import firing_btc_alert
from tests.conftest import PASSWORD, Auth, change_password, client_as, csrf_token_from, make_user

NEW_PASSWORD = "another fine password 7"


def test_record_event_adds_to_the_callers_unit_of_work(app):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        record_event(Action.USER_ENABLE, target="user:x", actor="cli")
        db.session.rollback()
        assert db.session.execute(db.select(AuditEvent)).first() is None
        event = record_event(Action.USER_ENABLE, target="user:x", actor="cli")
        db.session.commit()
        assert (event.actor_id, event.actor_name, event.ip_address) == (None, "cli", "10.1.2.3")


def test_record_event_drops_detail_keys_that_could_hold_a_secret(app):
    with app.app_context():
        event = record_event(
            Action.USER_CREATE,
            detail={
                "password": "hunter2hunter2",
                "new_secret": "s",
                "session_cookie": "c",
                "k": 1,
            },
        )
        assert event.detail == {"k": 1}
        assert event.actor_name == "anonymous"


def test_record_event_refuses_an_unknown_action(app):
    with app.app_context(), pytest.raises(ValueError):
        record_event("user.delete")


def test_successful_login_and_logout_are_recorded(any_app):
    make_user(any_app, "alice")
    client = any_app.test_client()
    auth = Auth(client)
    auth.login(headers={"User-Agent": "probe/1.0"})
    event = only_event(any_app, Action.LOGIN_SUCCESS, PASSWORD)
    assert (event.actor_name, event.target, event.user_agent) == (
        "alice",
        "user:alice",
        "probe/1.0",
    )
    assert event.actor_id == user(any_app, "alice").id
    auth.logout()
    assert only_event(any_app, Action.LOGOUT).actor_name == "alice"


def test_failed_login_is_recorded_though_the_login_fails(any_app):
    make_user(any_app, "alice")
    response = Auth(any_app.test_client()).login(password="wrong password!!")
    assert response.status_code == 200  # the form again
    event = only_event(any_app, Action.LOGIN_FAILURE, "wrong password!!")
    assert (event.actor_name, event.actor_id, event.target) == ("anonymous", None, "user:alice")
    assert event.detail == {"reason": "wrong_password"}
    Auth(any_app.test_client()).login(username="nobody")
    assert events(any_app, Action.LOGIN_FAILURE)[-1].detail == {"reason": "unknown_user"}


def test_login_refused_for_a_locked_username_is_recorded_as_locked(any_app):
    any_app.config["LOGIN_MAX_FAILURES_PER_USER"] = 2
    make_user(any_app, "alice")
    for _ in range(2):
        Auth(any_app.test_client()).login(password="wrong password!!")
    Auth(any_app.test_client()).login()  # the right password, refused
    assert len(events(any_app, Action.LOGIN_FAILURE)) == 2
    event = only_event(any_app, Action.LOGIN_LOCKED, PASSWORD)
    assert event.detail == {"reason": "username_locked"}
    assert events(any_app, Action.LOGIN_SUCCESS) == []


def test_password_change_is_recorded_without_the_passwords(any_app):
    make_user(any_app, "alice")
    client = any_app.test_client()
    Auth(client).login()
    response = change_password(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    event = only_event(any_app, Action.PASSWORD_CHANGE, PASSWORD, NEW_PASSWORD)
    assert (event.actor_name, event.target) == ("alice", "user:alice")


def test_own_token_create_and_revoke_and_session_revoke_are_recorded(any_app):
    make_user(any_app, "alice")
    other = any_app.test_client()
    Auth(other).login()
    client = any_app.test_client()
    Auth(client).login()
    page = client.post(
        "/account/tokens",
        data={
            "csrf_token": csrf_token_from(client, "/account"),
            "tok-name": "feed",
            "tok-scopes": ["read"],
        },
    ).get_data(as_text=True)
    secret = page.split('data-testid="new-token-secret">')[1].split("<")[0]
    created = only_event(any_app, Action.TOKEN_CREATE, secret)
    assert created.actor_name == "alice" and created.detail["name"] == "feed"
    token_id = int(created.target.split(":")[1])
    client.post(
        f"/account/tokens/{token_id}/revoke",
        data={"csrf_token": csrf_token_from(client, "/account")},
    )
    assert only_event(any_app, Action.TOKEN_REVOKE, secret).target == f"token:{token_id}"
    client.post(
        "/account/sessions/revoke-others", data={"csrf_token": csrf_token_from(client, "/account")}
    )
    event = only_event(any_app, Action.SESSION_REVOKE)
    assert event.actor_name == "alice" and event.detail["other_sessions_ended"] == 1


def test_cli_user_and_token_commands_are_recorded_as_cli(any_app):
    runner = any_app.test_cli_runner()
    typed = "cli typed password 1\n"
    assert (
        runner.invoke(args=["users", "create", "zed", "--password-stdin"], input=typed).exit_code
        == 0
    )
    assert (
        runner.invoke(
            args=["users", "set-password", "zed", "--password-stdin"],
            input="cli second password 2\n",
        ).exit_code
        == 0
    )
    assert runner.invoke(args=["users", "disable", "zed"]).exit_code == 0
    assert runner.invoke(args=["users", "enable", "zed"]).exit_code == 0
    result = runner.invoke(args=["tokens", "create", "zed", "feed", "--scope", "read"])
    secret = result.stdout.strip().splitlines()[-1]
    token_id = int(only_event(any_app, Action.TOKEN_CREATE, secret).target.split(":")[1])
    assert runner.invoke(args=["tokens", "revoke", str(token_id)]).exit_code == 0
    for action in (
        Action.USER_CREATE,
        Action.PASSWORD_RESET,
        Action.USER_DISABLE,
        Action.USER_ENABLE,
        Action.TOKEN_CREATE,
        Action.TOKEN_REVOKE,
    ):
        event = only_event(
            any_app, action, "cli typed password 1", "cli second password 2", secret
        )
        assert (event.actor_name, event.actor_id) == ("cli", None), action
    assert only_event(any_app, Action.USER_DISABLE).target == "user:zed"


RULE = {
    "name": "BTC cap",
    "kind": "position_above",
    "asset": "BTC",
    "account": "*",
    "threshold": "2.5",
    "clear_threshold": "2",
    "window_seconds": "",
    "pending_seconds": "0",
    "severity": "critical",
    "description": "",
    "runbook_url": "",
    "repeat_interval_seconds": "3600",
    "send_resolved": "y",
    "enabled": "y",
}


def test_rule_changes_are_recorded(any_app):
    client = client_as(any_app, Role.OPERATOR, "op")
    post(client, "/alerts/rules/new", "/alerts/rules/new", **RULE)
    rule_id = int(only_event(any_app, Action.RULE_CREATE).target.split(":")[1])
    post(
        client, f"/alerts/rules/{rule_id}/edit", "/alerts/rules/new", **{**RULE, "threshold": "3"}
    )
    post(client, f"/alerts/rules/{rule_id}/toggle", "/alerts/rules")
    post(client, f"/alerts/rules/{rule_id}/toggle", "/alerts/rules")
    post(client, f"/alerts/rules/{rule_id}/delete", "/alerts/rules")
    for action in (
        Action.RULE_UPDATE,
        Action.RULE_DISABLE,
        Action.RULE_ENABLE,
        Action.RULE_DELETE,
    ):
        event = only_event(any_app, action)
        assert (event.actor_name, event.target) == ("op", f"rule:{rule_id}"), action
    assert events(any_app, Action.RULE_DELETE)[0].detail == {"name": "BTC cap"}


def test_channel_creation_is_recorded_without_its_url(any_app, admin):
    url = "https://hooks.example/services/T000/B000/very-secret-path"
    response = post(
        admin, "/alerts/channels", "/alerts/channels", name="ops", kind="webhook", target=url
    )
    assert response.status_code == 302
    event = only_event(any_app, Action.CHANNEL_CREATE, url, "very-secret-path")
    assert event.actor_name == "root" and event.detail == {"name": "ops", "kind": "webhook"}


@pytest.fixture
def firing_alert(any_app):
    return firing_btc_alert(any_app)


def test_acknowledge_and_silences_are_recorded(any_app, firing_alert):
    client = client_as(any_app, Role.OPERATOR, "op")
    post(client, f"/alerts/{firing_alert}/acknowledge", "/alerts/", comment="on it")
    event = only_event(any_app, Action.ALERT_ACK)
    assert (event.actor_name, event.target) == ("op", f"alert:{firing_alert}")
    post(client, f"/alerts/{firing_alert}/silence", "/alerts/", hours="2")
    post(
        client,
        "/alerts/silences",
        "/alerts/silences",
        rule_id="0",
        asset="ETH",
        account="*",
        hours="1",
        comment="rolling",
        action="create",
    )
    created = events(any_app, Action.SILENCE_CREATE)
    assert len(created) == 2 and {e.actor_name for e in created} == {"op"}
    with any_app.app_context():
        silence_id = db.session.execute(
            db.select(Silence.id).where(Silence.asset == "ETH")
        ).scalar_one()
    post(client, f"/alerts/silences/{silence_id}/expire", "/alerts/silences")
    assert only_event(any_app, Action.SILENCE_EXPIRE).target == f"silence:{silence_id}"


def _id(app, action) -> int:
    """The number in the target of the latest entry with `action`."""
    return int(events(app, action)[-1].target.split(":")[1])


def test_cli_and_pages_leave_the_same_entries(any_app, admin):
    operator = client_as(any_app, Role.OPERATOR, "op")
    post(operator, "/alerts/rules/new", "/alerts/rules/new", **RULE)
    rule = _id(any_app, Action.RULE_CREATE)
    for _ in range(2):
        post(operator, f"/alerts/rules/{rule}/toggle", "/alerts/rules")
    post(
        admin,
        "/alerts/channels",
        "/alerts/channels",
        name="ops",
        kind="webhook",
        target="https://h.example/a",
    )
    channel = _id(any_app, Action.CHANNEL_CREATE)
    post(admin, f"/alerts/channels/{channel}/toggle", "/alerts/channels")
    post(
        operator, "/alerts/silences", "/alerts/silences",
        rule_id=str(rule), asset="ETH", account="*", hours="1", comment="roll", action="create",
    )  # fmt: skip
    silence = _id(any_app, Action.SILENCE_CREATE)
    post(operator, f"/alerts/silences/{silence}/expire", "/alerts/silences")
    post(operator, f"/alerts/rules/{rule}/delete", "/alerts/rules")
    post(admin, f"/alerts/channels/{channel}/delete", "/alerts/channels")
    post(admin, "/admin/users", username="carol", role="viewer", password="carols fine password 1")
    carol = user(any_app, "carol").id
    for step in ("disable", "enable", "reset-password"):
        post(admin, f"/admin/users/{carol}/{step}", f"/admin/users/{carol}")

    runner = any_app.test_cli_runner()
    typed = "zeds fine password 2\n"
    for args in (
        ["alerts", "add-rule", "ETH cap", "--kind", "position_above", "--threshold", "9"],
        ["alerts", "disable-rule", "ETH cap"],
        ["alerts", "enable-rule", "ETH cap"],
        ["alerts", "add-channel", "desk", "--kind", "webhook", "--target", "https://h.example/b"],
        ["alerts", "disable-channel", "desk"],
        ["alerts", "add-silence", "--rule", "ETH cap", "--asset", "ETH", "--hours", "1",
         "--comment", "roll"],
        ["alerts", "expire-silence", "LATEST"],
        ["alerts", "delete-rule", "ETH cap", "--yes"],
        ["alerts", "delete-channel", "desk", "--yes"],
        ["users", "create", "zed", "--password-stdin"],
        ["users", "disable", "zed"],
        ["users", "enable", "zed"],
        ["users", "set-password", "zed", "--password-stdin"],
    ):  # fmt: skip
        if "LATEST" in args:
            args = [*args[:-1], str(_id(any_app, Action.SILENCE_CREATE))]
        result = runner.invoke(args=args, input=typed)
        assert result.exit_code == 0, result.output
    for action, page_actor in (
        (Action.RULE_CREATE, "op"),
        (Action.RULE_DISABLE, "op"),
        (Action.RULE_ENABLE, "op"),
        (Action.RULE_DELETE, "op"),
        (Action.CHANNEL_CREATE, "root"),
        (Action.CHANNEL_UPDATE, "root"),
        (Action.CHANNEL_DELETE, "root"),
        (Action.SILENCE_CREATE, "op"),
        (Action.SILENCE_EXPIRE, "op"),
        (Action.USER_CREATE, "root"),
        (Action.USER_DISABLE, "root"),
        (Action.USER_ENABLE, "root"),
        (Action.PASSWORD_RESET, "root"),
    ):
        page, cli = events(any_app, action)
        assert (page.actor_name, cli.actor_name, cli.actor_id) == (page_actor, "cli", None)
        assert page.target.split(":")[0] == cli.target.split(":")[0]
        assert set(page.detail or {}) == set(cli.detail or {}), action
        assert {k: type(v) for k, v in (page.detail or {}).items()} == {
            k: type(v) for k, v in (cli.detail or {}).items()
        }, action


CSV_HEADER = "account,asset,timestamp,amount,price\n"


def test_bulk_position_commands_leave_one_summary_entry_each(any_app, tmp_path):
    runner = any_app.test_cli_runner()
    file = tmp_path / "desk.csv"
    file.write_text(
        CSV_HEADER + "".join(f"main,BTC,2026-03-01T00:0{m}:00Z,{m + 1},\n" for m in range(4))
    )
    for _ in range(2):
        assert runner.invoke(args=["positions", "import", str(file)]).exit_code == 0
    first, again = events(any_app, Action.POSITIONS_IMPORT)
    assert (first.actor_name, first.actor_id, first.target) == ("cli", None, "file:desk.csv")
    assert first.detail == {"source": "csv", "inserted": 4, "duplicates": 0, "complete": True}
    assert again.detail == {"source": "csv", "inserted": 0, "duplicates": 4, "complete": True}

    prune = ["positions", "prune", "--before", "2026-03-01T00:02:00Z"]
    assert runner.invoke(args=[*prune, "--dry-run"]).exit_code == 0
    assert events(any_app, Action.POSITIONS_PRUNE) == []
    assert runner.invoke(args=[*prune, "--yes"]).exit_code == 0
    event = only_event(any_app, Action.POSITIONS_PRUNE)
    assert (event.actor_name, event.target) == ("cli", "positions:*")
    assert event.detail == {"before": "2026-03-01T00:02:00Z", "deleted": 2}

    seed = ["seed", "demo", "--assets", "ETH", "--accounts", "main", "--days", "1"]
    assert runner.invoke(args=[*seed, "--interval", "1h"]).exit_code == 0
    event = events(any_app, Action.POSITIONS_IMPORT)[-1]
    assert (event.actor_name, event.target) == ("cli", "seed:demo")
    assert event.detail["source"] == "seed" and event.detail["inserted"] > 0


def test_a_failed_import_is_audited_only_for_what_it_stored(app, tmp_path):
    runner = app.test_cli_runner()
    bad = "main,BTC,not a time,1,\n"
    file = tmp_path / "bad.csv"
    file.write_text(CSV_HEADER + bad)
    assert runner.invoke(args=["positions", "import", str(file)]).exit_code == 1
    assert events(app) == []
    # A first batch stored, then the error: what was stored is on the record.
    start = datetime(2026, 3, 1, tzinfo=UTC)
    good = "".join(
        f"main,BTC,{(start + timedelta(seconds=n)).isoformat()},1,\n" for n in range(BATCH_SIZE)
    )
    file.write_text(CSV_HEADER + good + bad)
    assert runner.invoke(args=["positions", "import", str(file)]).exit_code == 1
    event = only_event(app, Action.POSITIONS_IMPORT)
    assert event.detail == {
        "source": "csv",
        "inserted": BATCH_SIZE,
        "duplicates": 0,
        "complete": False,
    }


def test_first_run_records_the_demo_admin_and_the_data(app):
    result = app.test_cli_runner().invoke(args=["seed", "first-run", "--days", "1"])
    password = result.output.split("password: ")[1].split()[0]
    created = only_event(app, Action.USER_CREATE, password)
    assert (created.actor_name, created.target) == ("cli", "user:admin")
    assert created.detail == {"role": "admin", "generated_initial": True, "must_change": False}
    assert only_event(app, Action.POSITIONS_IMPORT).detail["source"] == "seed"


# Every command of these groups either writes the audit entries its page writes (tested
# above and in tests/alerts/test_cli.py, tests/positions/test_cli.py) or changes nothing
# the audit log covers: it reads, or does the system's own work (evaluation, delivery,
# rollups). A new command must be put on one side.
AUDITED_COMMANDS = {
    "alerts add-rule": Action.RULE_CREATE,
    "alerts enable-rule": Action.RULE_ENABLE,
    "alerts disable-rule": Action.RULE_DISABLE,
    "alerts delete-rule": Action.RULE_DELETE,
    "alerts add-channel": Action.CHANNEL_CREATE,
    "alerts enable-channel": Action.CHANNEL_UPDATE,
    "alerts disable-channel": Action.CHANNEL_UPDATE,
    "alerts delete-channel": Action.CHANNEL_DELETE,
    "alerts add-silence": Action.SILENCE_CREATE,
    "alerts expire-silence": Action.SILENCE_EXPIRE,
    "users create": Action.USER_CREATE,
    "users set-password": Action.PASSWORD_RESET,
    "users disable": Action.USER_DISABLE,
    "users enable": Action.USER_ENABLE,
    "users break-glass": Action.USER_BREAK_GLASS,
    "users reset-2fa": Action.SECOND_FACTOR_RESET,
    "tokens create": Action.TOKEN_CREATE,
    "tokens revoke": Action.TOKEN_REVOKE,
    "positions import": Action.POSITIONS_IMPORT,
    "positions prune": Action.POSITIONS_PRUNE,
    "positions delete": Action.POSITIONS_DELETE,
    "seed demo": Action.POSITIONS_IMPORT,
    "seed first-run": Action.USER_CREATE,
    "recon add": Action.RECON_CREATE,
    "recon update": Action.RECON_UPDATE,
    "recon delete": Action.RECON_DELETE,
}
UNAUDITED_COMMANDS = {
    "alerts list",
    "alerts evaluate",
    "alerts deliver",
    "alerts run",
    # Composes a digest and, with --send, mails it now: nothing stored changes.
    "alerts digest",
    "users list",
    "tokens list",
    "positions export",
    "positions rollup",
    "positions partitions",
    "auth oidc-check",
    "recon list",
    "recon status",
    "recon preview",
}


def test_every_command_that_changes_audited_things_is_declared_audited(app):
    groups = ("alerts", "users", "tokens", "positions", "seed", "auth", "recon")
    found = {f"{group} {name}" for group in groups for name in app.cli.commands[group].commands}
    assert found - set(AUDITED_COMMANDS) - UNAUDITED_COMMANDS == set()
    assert set(AUDITED_COMMANDS) | UNAUDITED_COMMANDS == found
    assert set(AUDITED_COMMANDS.values()) <= set(Action.ALL)
