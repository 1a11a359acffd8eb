"""The models and the Alembic migrations describe the same schema."""

from __future__ import annotations

import secrets

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

from hub.dev.embedded import create_database, drop_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.models import Base


def test_models_and_migrations_agree(settings):
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_object": lambda obj, name, type_, *a: not (
                type_ == "table" and name.startswith("celery_")),
        })
        diff = compare_metadata(context, Base.metadata)

    assert diff == []


@pytest.fixture
def scratch_settings(settings):
    name = f"hub_scratch_{secrets.token_hex(4)}"
    create_database(settings.database_url, name)
    yield load_settings({}, database_url=with_database(settings.database_url, name))
    drop_database(settings.database_url, name)


def test_upgrade_downgrade_to_base_and_upgrade_again(scratch_settings):
    migrate.upgrade(scratch_settings)
    assert migrate.current(scratch_settings) == migrate.head_revision(scratch_settings)

    migrate.downgrade(scratch_settings, "base")
    engine = create_engine(scratch_settings.database_url, poolclass=pool.NullPool)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(scratch_settings)
    assert "integrations" in inspect(engine).get_table_names()
    engine.dispose()
