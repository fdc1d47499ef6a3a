from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.demo_ai._support import FakeDesk, serve_fake_desk


@pytest.fixture
def fake_desk() -> Iterator[FakeDesk]:
    with serve_fake_desk() as desk:
        yield desk
