"""Fixtures of the admin tests: an admin's client on SQLite and on PostgreSQL."""

import pytest

from app.auth.models import Role
from tests.conftest import client_as


@pytest.fixture
def admin(any_app):
    """A client logged in as the admin root."""
    return client_as(any_app, Role.ADMIN, "root")
