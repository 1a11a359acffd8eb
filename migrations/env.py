"""Alembic environment.

Migrations run under an advisory lock (two releases starting at once apply them
once) and short lock/statement timeouts, so a migration that would queue behind
live traffic fails fast instead of blocking every worker (as in
pypi/warehouse's migrations/env.py).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from hub.platform.config import load_settings
from hub.platform.models import Base

MIGRATION_LOCK_ID = 0x48_55_42  # "HUB": the advisory lock every migrator takes.

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # Celery's result backend creates and owns its own tables.
    return not (type_ == "table" and name in {"celery_taskmeta", "celery_tasksetmeta"})


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    connection.execute(text("SET lock_timeout = '4s'"))
    connection.execute(text("SET statement_timeout = '5min'"))
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    # Session-level settings and lock outlive this commit; Alembic then owns the
    # transactions (one per revision).
    connection.commit()
    try:
        context.configure(connection=connection, target_metadata=target_metadata,
                          include_object=include_object, compare_type=True,
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.in_transaction():
            connection.rollback()  # a failed migration leaves an aborted transaction
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
