"""API fixtures: tokens and a helper to post batches."""

import pytest

from app.auth.models import Role, User
from app.auth.tokens import create_token
from app.extensions import db
from tests.conftest import make_user


class Tokens:
    """Create tokens for the bot user and keep their secrets."""

    def __init__(self, app):
        self.app = app
        self.user_id = make_user(app, "bot", role=Role.ADMIN)

    def create(self, *scopes, accounts=None, expires_at=None, name="test") -> str:
        with self.app.app_context():
            user = db.session.get(User, self.user_id)
            _, secret = create_token(
                user,
                name,
                list(scopes or ("ingest", "read")),
                accounts=accounts,
                expires_at=expires_at,
            )
            db.session.commit()
            return secret


@pytest.fixture
def tokens(app):
    return Tokens(app)


@pytest.fixture
def any_tokens(any_app):
    return Tokens(any_app)


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def row(account="main", asset="BTC", timestamp="2026-03-01T12:00:00Z", amount="1.5", **extra):
    return {"account": account, "asset": asset, "timestamp": timestamp, "amount": amount, **extra}
