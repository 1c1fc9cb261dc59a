"""Company sign-in in Chromium: our login page, the provider's own page, and back.

The provider is a real process (oidc-provider-mock) on a loopback port; the browser
follows its redirects like any other.
"""

import re

import pytest
from playwright.sync_api import expect

from app.auth.models import Role, User
from app.extensions import db
from tests.auth.oidc_provider import ADMIN_GROUP, OPERATOR_GROUP
from tests.conftest import PASSWORD, build_app, make_user, serve

pytestmark = pytest.mark.browser


@pytest.fixture
def oidc_server(sqlite_url, oidc_provider):
    """The app on a real socket, signing in with the provider process."""
    app = build_app(sqlite_url, **oidc_provider.settings())
    with app.app_context():
        db.create_all()
    with serve(app) as server:
        yield server
    with app.app_context():
        db.engine.dispose()


def sign_in_at_provider(page, provider, sub: str) -> None:
    """On the provider's authorization page, sign in as `sub`."""
    expect(page).to_have_url(re.compile(re.escape(f"{provider.url}/oauth2/authorize")))
    page.fill("input[name=sub]", sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_load_state()


def test_a_new_colleague_signs_in_with_the_company_provider(
    oidc_server, oidc_provider, browser_page, artifacts_dir
):
    oidc_provider.set_user(
        "browser-olga",
        preferred_username="olga",
        email="olga@example.com",
        groups=[OPERATOR_GROUP],
    )
    page = browser_page
    page.goto(f"{oidc_server.url}/alerts/")
    expect(page).to_have_url(re.compile(r"/login\?next=/alerts/$"))
    button = page.get_by_role("button", name="Sign in with Mock Identity")
    expect(button).to_be_visible()
    page.screenshot(path=artifacts_dir / "oidc-login.png", caret="initial")
    button.click()

    sign_in_at_provider(page, oidc_provider, "browser-olga")
    # Back on our side, signed in, on the page first asked for.
    expect(page).to_have_url(f"{oidc_server.url}/alerts/")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("olga")
    page.screenshot(path=artifacts_dir / "oidc-signed-in.png", caret="initial")
    with oidc_server.app.app_context():
        user = db.session.execute(db.select(User).where(User.username == "olga")).scalar_one()
        assert user.role == Role.OPERATOR
        assert user.oidc_subject == "browser-olga"


def test_a_refused_sign_in_comes_back_to_the_login_page_saying_why(
    oidc_server, oidc_provider, browser_page
):
    oidc_provider.set_user("browser-guest", preferred_username="guest", groups=["visitors"])
    page = browser_page
    page.goto(f"{oidc_server.url}/login")
    page.get_by_role("button", name="Sign in with Mock Identity").click()
    sign_in_at_provider(page, oidc_provider, "browser-guest")
    expect(page).to_have_url(f"{oidc_server.url}/login")
    expect(page.get_by_role("alert")).to_contain_text("None of your groups at Mock Identity")
    page.goto(f"{oidc_server.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))


def test_a_lowered_role_ends_the_other_browser_session(oidc_server, oidc_provider, open_page):
    oidc_provider.set_user("browser-ada", preferred_username="ada", groups=[ADMIN_GROUP])
    laptop = open_page()
    laptop.goto(f"{oidc_server.url}/login")
    laptop.get_by_role("button", name="Sign in with Mock Identity").click()
    sign_in_at_provider(laptop, oidc_provider, "browser-ada")
    laptop.goto(f"{oidc_server.url}/admin/users")
    expect(laptop.get_by_role("heading", level=1)).to_be_visible()
    expect(laptop).to_have_url(f"{oidc_server.url}/admin/users")

    oidc_provider.set_user("browser-ada", preferred_username="ada", groups=[OPERATOR_GROUP])
    phone = open_page()
    phone.goto(f"{oidc_server.url}/login")
    phone.get_by_role("button", name="Sign in with Mock Identity").click()
    sign_in_at_provider(phone, oidc_provider, "browser-ada")
    expect(phone).to_have_url(f"{oidc_server.url}/")

    laptop.goto(f"{oidc_server.url}/")
    expect(laptop).to_have_url(re.compile(r"/login\?next=/$"))


def test_with_local_passwords_off_the_provider_is_the_way_in(
    oidc_server, browser_page, artifacts_dir
):
    from tests.auth.test_break_glass import mark, switch_local_passwords

    make_user(oidc_server.app, "root", role=Role.ADMIN)
    mark(oidc_server.app, "root", break_glass=True)
    make_user(oidc_server.app, "kim", role=Role.ADMIN)
    switch_local_passwords(oidc_server.app, False)
    page = browser_page
    page.goto(f"{oidc_server.url}/login")
    expect(page.get_by_role("button", name="Sign in with Mock Identity")).to_be_visible()
    # The password form is folded away for the break-glass admins.
    expect(page.get_by_label("Password")).to_be_hidden()
    page.screenshot(path=artifacts_dir / "oidc-login-passwords-off.png", caret="initial")
    page.get_by_text("Break-glass admin sign-in").click()
    expect(page.get_by_label("Password")).to_be_visible()

    # An admin who is not break-glass is sent to the provider, even with the right password.
    page.get_by_label("Username").fill("kim")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.get_by_text("Local passwords are switched off")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login"))

    # The form stays open after a refusal; the break-glass admin signs in with it.
    expect(page.get_by_label("Password")).to_be_visible()
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.get_by_test_id("current-user")).to_have_text("root")
