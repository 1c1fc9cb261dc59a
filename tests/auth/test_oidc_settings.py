"""Company sign-in settings: checked when the app is built, groups mapped to roles."""

import pytest

from app.auth.models import Role
from app.auth.oidc import (
    OIDCConfigError,
    groups_from_claims,
    role_for,
    settings_from_config,
)
from tests.conftest import build_app

BASE = {
    "OIDC_ISSUER": "https://id.example.com/realms/desk",
    "OIDC_CLIENT_ID": "tradingmonitor",
    "OIDC_CLIENT_SECRET": "secret",
    "OIDC_SCOPES": "openid profile email",
    "OIDC_DEFAULT_ROLE": "",
}


def settings(**overrides):
    return settings_from_config({**BASE, "OIDC_VIEWER_GROUPS": "everyone", **overrides})


def test_without_an_issuer_company_sign_in_is_off():
    assert settings_from_config({}) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_SECRET"),
        ({"OIDC_ISSUER": "id.example.com"}, "must be an http"),
        ({"OIDC_ISSUER": "http://id.example.com"}, "must use https"),
        ({"OIDC_SCOPES": "profile email"}, "must include openid"),
        ({"OIDC_DEFAULT_ROLE": "root"}, "OIDC_DEFAULT_ROLE must be one of"),
        ({"OIDC_VIEWER_GROUPS": ""}, "nobody could sign in"),
    ],
)
def test_settings_that_cannot_work_stop_the_app_from_starting(sqlite_url, overrides, message):
    with pytest.raises(OIDCConfigError, match=message):
        settings(**overrides)
    with pytest.raises(OIDCConfigError, match=message):
        build_app(sqlite_url, **{**BASE, "OIDC_VIEWER_GROUPS": "everyone", **overrides})


def test_a_numeric_client_id_from_the_environment_stays_text():
    assert settings(OIDC_CLIENT_ID=1234567890).client_id == "1234567890"


def test_groups_are_a_comma_list_or_a_json_list():
    found = settings(
        OIDC_ADMIN_GROUPS="desk-admins, risk ",
        OIDC_OPERATOR_GROUPS='["cn=ops,ou=groups,dc=example,dc=com"]',
        OIDC_VIEWER_GROUPS=["everyone", "risk"],
    )
    assert found.role_groups == {
        "everyone": Role.VIEWER,
        "cn=ops,ou=groups,dc=example,dc=com": Role.OPERATOR,
        "desk-admins": Role.ADMIN,
        # Listed for two roles: the higher one.
        "risk": Role.ADMIN,
    }


def test_the_highest_role_of_the_groups_wins_else_the_default():
    found = settings(OIDC_ADMIN_GROUPS="admins", OIDC_OPERATOR_GROUPS="ops")
    assert role_for(found, ["everyone", "admins", "ops"]) == Role.ADMIN
    assert role_for(found, ["ops"]) == Role.OPERATOR
    assert role_for(found, ["canteen"]) is None
    assert role_for(found, None) is None
    assert role_for(settings(OIDC_DEFAULT_ROLE="Viewer"), None) == Role.VIEWER


def test_the_groups_claim_may_be_a_path_a_single_name_or_a_url():
    claims = {
        "realm_access": {"roles": ["desk-admins"]},
        "group": "solo",
        "https://example.com/groups": ["a"],
    }
    assert groups_from_claims(claims, "realm_access.roles") == ["desk-admins"]
    assert groups_from_claims(claims, "group") == ["solo"]
    assert groups_from_claims(claims, "https://example.com/groups") == ["a"]
    assert groups_from_claims(claims, "groups") is None
    assert groups_from_claims({"groups": {"not": "a list"}}, "groups") is None
