"""Fixtures of the admin tests: an admin's client on SQLite and on PostgreSQL."""

import pytest

from app.auth.models import Role
from tests.conftest import Auth, make_user


@pytest.fixture
def admin(any_app):
    """A client logged in as the admin root."""
    make_user(any_app, "root", Role.ADMIN)
    client = any_app.test_client()
    assert Auth(client).login(username="root").status_code == 302
    return client
