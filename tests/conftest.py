"""Fixtures: fresh databases (SQLite and PostgreSQL), real `desk serve` processes, and a ready desk on them.

`database_url` and `desk` are per test; `module_database_url`, `module_desk` and `module_live_desk` are shared by
the tests of a module that do not interfere (each makes its own integration, staff and conversations).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests._support")

from tests import _support as support  # noqa: E402

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if isinstance(report, pytest.TestReport) and report.failed:
        for server in support.RUNNING:
            report.sections.append((f"desk serve :{server.port} ({server.database_url})", server.log_tail()))
    return report


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with support.database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with support.database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("sqlite", "memory"), id="sqlite-memory"),
        pytest.param(("postgres", "redis"), id="postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
)
def module_live_desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[support.Desk]:
    """A desk for socket tests: SQLite with the in-process bus, or PostgreSQL with Redis (production's shape)."""
    kind, bus = request.param
    directory = tmp_path_factory.mktemp("live")
    pool = support.ServerPool(directory)
    with support.database(kind, directory) as url:
        try:
            yield support.Desk(pool(url, redis=bus == "redis"))
        finally:
            pool.stop_all()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with support.database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def server(tmp_path: Path) -> Iterator[support.ServerPool]:
    """A factory: `server(database_url, redis=False)` starts `desk serve` and returns it once healthy."""
    pool = support.ServerPool(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.ServerPool]:
    pool = support.ServerPool(tmp_path_factory.mktemp("servers"))
    yield pool
    pool.stop_all()


@pytest.fixture
def desk(database_url: str, server: support.ServerPool) -> support.Desk:
    return support.Desk(server(database_url))


@pytest.fixture(scope="module")
def module_desk(module_database_url: str, module_server: support.ServerPool) -> support.Desk:
    return support.Desk(module_server(module_database_url))
