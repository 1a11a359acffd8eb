"""Fixtures of the fault tests: a fake provider of each test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.calls.fake_provider import FakeProvider, fake_provider


@pytest.fixture
def api() -> Iterator[FakeProvider]:
    with fake_provider() as p:
        yield p
