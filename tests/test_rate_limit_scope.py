"""Rate limits apply where they are declared (the API) and nowhere else."""

from sqlalchemy import create_engine, text

from app.auth.models import Role
from app.extensions import db
from tests.api.conftest import Tokens
from tests.conftest import _truncate_all, build_app, client_as


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


def test_a_database_fault_while_counting_a_token_is_a_503_and_the_next_call_counts_again(
    postgres_url,
):
    # The limit's key looks the token up: a lock held on the tokens (or PostgreSQL
    # going away) fails that lookup. The caller must get the database's 503, and the
    # failed lookup must not leave the request's transaction broken.
    options = {"pool_pre_ping": True, "connect_args": {"options": "-c lock_timeout=200"}}
    app = build_app(postgres_url, SQLALCHEMY_ENGINE_OPTIONS=options, API_RATE_LIMIT="5/minute")
    with app.app_context():
        _truncate_all()
    secret = Tokens(app).create("read")
    api = app.test_client()
    token = {"Authorization": f"Bearer {secret}"}

    holder = create_engine(postgres_url)
    try:
        with holder.begin() as conn:
            conn.execute(text("LOCK TABLE api_token IN ACCESS EXCLUSIVE MODE"))
            locked = api.get("/api/v1/assets", headers=token)
        after = [api.get("/api/v1/assets", headers=token).status_code for _ in range(3)]
    finally:
        holder.dispose()
        with app.app_context():
            db.engine.dispose()

    assert locked.status_code == 503
    assert locked.get_json()["error"] == "service_unavailable"
    assert int(locked.headers["Retry-After"]) > 0
    assert after == [200, 200, 200]
