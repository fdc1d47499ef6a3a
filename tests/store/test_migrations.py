"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and run both ways."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import desk.store.models  # noqa: F401  (registers the tables)
from desk.store.migrate import alembic_config, upgrade


def test_migrations_match_the_models(database_url: str) -> None:
    upgrade(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == [], f"models and migrations disagree; write a migration: {differences}"


def test_downgrade_to_nothing_and_back(database_url: str) -> None:
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "base")
    engine = sa.create_engine(database_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(database_url)
