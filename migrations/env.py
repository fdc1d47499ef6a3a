"""Alembic environment: the URL comes from `desk migrate` (or DESK_DATABASE_URL)."""

from __future__ import annotations

import os

from alembic import context
from sqlmodel import SQLModel

import desk.store.models  # noqa: F401  (registers the tables)
from desk.store.db import make_engine_for_migrations

config = context.config
url = config.attributes.get("url") or os.environ.get("DESK_DATABASE_URL", "sqlite:///./desk.db")
target_metadata = SQLModel.metadata


def run() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = make_engine_for_migrations(url)
        with engine.connect() as connection:
            _run_with(connection)
        engine.dispose()
    else:
        _run_with(connectable)


def _run_with(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
