"""Debian's Chromium driven by Playwright (Playwright's own browser download does not work here).

`make test` installs the `chromium` package; without it these tests skip loudly, and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests._support import Desk, ServerPool, database

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Without the networking switches Chromium keeps calling home, which this sandbox refuses.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        message = f"!!! {CHROMIUM} IS NOT INSTALLED: browser tests did NOT run (`make test` installs it)."
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def sqlite_desk(tmp_path: Path) -> Iterator[Desk]:
    """A desk on SQLite only, for browser tests about the page rather than the database: what they check is the
    same on PostgreSQL, where the HTTP and socket tests run everything again (and the whole loop runs in the
    browser on PostgreSQL with Redis too: test_handoff_in_chromium.py)."""
    pool = ServerPool(tmp_path)
    with database("sqlite", tmp_path) as url:
        try:
            yield Desk(pool(url))
        finally:
            pool.stop_all()


@pytest.fixture
def desk(sqlite_desk: Desk) -> Desk:
    """Browser tests take `desk` on SQLite (see sqlite_desk)."""
    return sqlite_desk


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
