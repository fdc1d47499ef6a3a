"""Engines and transactions.

Writes run in one transaction each. On SQLite that is `BEGIN IMMEDIATE` (the write lock is taken up front, so two
writers never deadlock upgrading a read lock) behind a per-process lock (threads of one process queue in Python
rather than spinning in SQLite's busy handler); WAL lets readers go on meanwhile. On PostgreSQL, events are inserted
under a transaction-level advisory lock held until commit, so event ids become visible in increasing order and a
reader that has seen id N never later finds a smaller one.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_CACHE_KIB = 64 * 1024
EVENTS_LOCK_KEY = 0x6465736B  # "desk"

_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("desk_immediate", default=False)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # 64 MiB of page cache (the default is 2 MiB): a desk with thousands of queued conversations keeps the
        # queue's pages in memory; measured with bench.queue_page, the queue reads ran about twice as fast.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")

    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
        elif ":memory:" in url:
            raise ValueError("in-memory databases are not supported")
        else:
            self.engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # Called (from the writing thread) with the event records of each commit that wrote some.
        self.commit_listeners: list[Callable[[list[Any]], None]] = []

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """One write transaction on a Core connection: committed on success, rolled back on any exception."""
        token = _immediate.set(True)
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self.engine.begin() as connection:
                yield connection
        finally:
            if lock is not None:
                lock.release()
            _immediate.reset(token)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction through the ORM."""
        with self.write_connection() as connection, orm_session(connection) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """One read transaction on a Core connection, for reads on hot paths that need no ORM session."""
        with self.engine.begin() as connection:
            yield connection

    @property
    def events_lock_key(self) -> int | None:
        """The advisory lock that orders event ids (PostgreSQL); SQLite's writes are serial already."""
        return None if self.is_sqlite else EVENTS_LOCK_KEY

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def orm_session(connection: Connection) -> Iterator[Session]:
    """An ORM session inside a connection's transaction: it flushes, the connection's owner commits."""
    session = Session(bind=connection, expire_on_commit=False)
    try:
        yield session
        session.flush()
    finally:
        session.close()


def make_engine_for_migrations(url: str) -> Engine:
    return create_engine(url, poolclass=NullPool)
