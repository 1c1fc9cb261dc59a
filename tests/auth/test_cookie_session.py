"""The signed cookie session: its age, signature, secret and per-request copies."""

import time

from flask import request

from tests.conftest import csrf_token_from


def session_cookie(client, app) -> str:
    return client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value


def replay(app, cookie):
    """A new client sending `cookie` and keeping no cookie it is sent back."""
    other = app.test_client(use_cookies=False)
    other.environ_base["HTTP_COOKIE"] = f"{app.config['SESSION_COOKIE_NAME']}={cookie}"
    return other


def open_twice(app, cookie, change):
    """Open the session of `cookie` in two requests, calling change(session) in the first."""
    interface = app.session_interface
    header = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}
    with app.test_request_context(headers=header):
        change(interface.open_session(app, request))
    with app.test_request_context(headers=header):
        return interface.open_session(app, request)


def test_a_cookie_still_expires_with_the_session_lifetime(app, client, auth, viewer, monkeypatch):
    auth.login()
    cookie = session_cookie(client, app)
    assert replay(app, cookie).get("/").status_code == 200
    lifetime = app.permanent_session_lifetime.total_seconds()
    later = time.time() + lifetime + 60
    monkeypatch.setattr(time, "time", lambda: later)
    assert replay(app, cookie).get("/").status_code == 302


def test_a_tampered_cookie_is_refused(app, client, auth, viewer):
    auth.login()
    cookie = session_cookie(client, app)
    assert replay(app, cookie).get("/").status_code == 200
    # Not the last character: its low bits are base64 padding, so some swaps decode alike.
    tampered = cookie[:-5] + ("A" if cookie[-5] != "A" else "B") + cookie[-4:]
    assert replay(app, tampered).get("/").status_code == 302


def test_a_new_secret_key_refuses_cookies_signed_under_the_old_one(app, client, auth, viewer):
    auth.login()
    cookie = session_cookie(client, app)
    assert replay(app, cookie).get("/").status_code == 200
    app.config["SECRET_KEY"] = "another secret key, at least thirty-two bytes long"
    assert replay(app, cookie).get("/").status_code == 302


def test_a_change_to_a_session_stays_in_its_own_request(app, client, auth, viewer):
    auth.login()
    cookie = session_cookie(client, app)
    browser = replay(app, cookie)
    token = csrf_token_from(browser, "/")
    toggled = browser.post("/account/utc", data={"csrf_token": token})
    assert toggled.status_code == 302
    # UTC is on in the cookie the toggle sent back.
    assert app.config["SESSION_COOKIE_NAME"] in toggled.headers.get("Set-Cookie", "")
    page = replay(app, cookie).get("/").get_data(as_text=True)
    assert 'aria-pressed="false"' in page  # the original cookie still has it off


def test_a_session_holding_a_list_is_not_shared_between_requests(app):
    signed = app.session_interface.get_signing_serializer(app)
    cookie = signed.dumps({"_flashes": [["info", "You are signed out."]]})

    second = open_twice(app, cookie, lambda s: s["_flashes"].append(["error", "added"]))
    assert second["_flashes"] == [["info", "You are signed out."]]


def test_a_session_is_a_new_copy_for_every_request(app):
    signed = app.session_interface.get_signing_serializer(app)
    cookie = signed.dumps({"_user_id": "token"})

    second = open_twice(app, cookie, lambda s: s.update(_user_id="changed", extra="x"))
    assert dict(second) == {"_user_id": "token"}
