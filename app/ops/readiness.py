"""What /readyz checks: the database answers, its schema is current, the worker beats."""

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text

from app.extensions import db


def code_migration_heads() -> set[str]:
    """The migration heads this code expects (read once per process)."""
    cache = current_app.extensions.setdefault("readyz", {})
    if "heads" not in cache:
        directory = current_app.extensions["migrate"].directory
        config = AlembicConfig()
        config.set_main_option("script_location", directory)
        cache["heads"] = set(ScriptDirectory.from_config(config).get_heads())
    return cache["heads"]


def database_migration_heads() -> set[str]:
    """The migrations the database is at (empty when it was never migrated)."""
    return {row[0] for row in db.session.execute(text("SELECT version_num FROM alembic_version"))}
