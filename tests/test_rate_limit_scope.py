"""Rate limits apply where they are declared (the API) and nowhere else."""

from app.auth.models import Role
from tests.api.conftest import Tokens
from tests.conftest import client_as


def test_pages_and_health_checks_are_never_rate_limited_while_the_api_is(app):
    app.config["API_RATE_LIMIT"] = "2/minute"
    secret = Tokens(app).create("read")
    api = app.test_client()
    viewer = client_as(app, Role.VIEWER, "alice")
    anonymous = app.test_client()

    pages = [viewer.get(path).status_code for path in ("/", "/alerts/", "/account") * 3]
    checks = [anonymous.get("/healthz").status_code for _ in range(6)]
    token = {"Authorization": f"Bearer {secret}"}
    calls = [api.get("/api/v1/assets", headers=token).status_code for _ in range(3)]

    assert pages == [200] * 9
    assert checks == [200] * 6
    assert calls == [200, 200, 429]


def test_a_token_counts_against_one_limit_however_the_header_spells_it(app):
    app.config["API_RATE_LIMIT"] = "2/minute"
    secret = Tokens(app).create("read")
    api = app.test_client()

    # bearer_secret() accepts each of these as the same token.
    spellings = [f"Bearer {secret}", f"bearer {secret}", f"BEARER  {secret}"]
    calls = [
        api.get("/api/v1/assets", headers={"Authorization": header}).status_code
        for header in spellings
    ]

    assert calls == [200, 200, 429]


def test_made_up_tokens_count_against_the_address_not_a_fresh_limit_each(app):
    app.config["API_RATE_LIMIT"] = "2/minute"
    api = app.test_client()

    calls = [
        api.get("/api/v1/assets", headers={"Authorization": f"Bearer made-up-{n}"}).status_code
        for n in range(3)
    ]

    assert calls == [401, 401, 429]


def test_a_real_token_keeps_its_own_count_beside_made_up_ones_from_the_same_address(app):
    app.config["API_RATE_LIMIT"] = "2/minute"
    secret = Tokens(app).create("read")
    api = app.test_client()

    made_up = [
        api.get("/api/v1/assets", headers={"Authorization": f"Bearer x{n}"}).status_code
        for n in range(3)
    ]
    real = [
        api.get("/api/v1/assets", headers={"Authorization": f"Bearer {secret}"}).status_code
        for _ in range(3)
    ]

    assert made_up == [401, 401, 429]
    assert real == [200, 200, 429]
