"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app.extensions import db
from app.positions.partitions import skip_partitions
from tests.conftest import (
    build_app,
    create_scratch_database,
    drop_scratch_database,
    postgres_admin_url,
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    admin_url = postgres_admin_url()
    url = create_scratch_database(admin_url)
    yield url
    drop_scratch_database(admin_url, url)


def differences(app) -> list:
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "include_name": skip_partitions(conn)}
        context = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(context, db.metadata)


def test_upgrade_from_empty_matches_models_and_downgrades_cleanly(empty_database_url):
    app = build_app(empty_database_url)
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"user", "user_session", "position", "latest_position"} <= tables
        assert differences(app) == []

        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}

        upgrade()
        assert differences(app) == []
        db.engine.dispose()


def test_a_freshly_migrated_database_has_no_account(tmp_path):
    from app.auth.models import User

    app = build_app(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    with app.app_context():
        upgrade()
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 0
        db.engine.dispose()
