"""The desk's signing secret when DESK_SECRET_KEY is not set: generated once, kept in the database."""

from __future__ import annotations

import secrets
from dataclasses import replace

from sqlalchemy.exc import IntegrityError

from desk.config import Settings
from desk.store.db import Database
from desk.store.models import Setting

SECRET_SETTING = "secret_key"  # noqa: S105  (the name of the row, not a secret)


def ensure_secret(db: Database) -> str:
    with db.read() as session:
        row = session.get(Setting, SECRET_SETTING)
        if row is not None:
            return row.value
    try:
        with db.write() as session:
            session.add(Setting(key=SECRET_SETTING, value=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another process generated it first
    with db.read() as session:
        row = session.get(Setting, SECRET_SETTING)
        assert row is not None
        return row.value


def with_secret(settings: Settings, db: Database) -> Settings:
    return settings if settings.secret_key else replace(settings, secret_key=ensure_secret(db))
