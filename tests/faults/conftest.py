"""Fixtures of the fault tests: a fake provider of each test's own.

The fault tests run one at a time, on one pytest-xdist worker (group ``faults``,
setup.cfg's ``--dist loadgroup``), while the other worker runs the rest of the suite:
each starts its own servers and workers and kills some, and their deadlines are set
for one such test at a time on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.calls.fake_provider import FakeProvider, fake_provider

_HERE = Path(__file__).parent


@pytest.fixture
def api() -> Iterator[FakeProvider]:
    with fake_provider() as p:
        yield p


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.xdist_group("faults"))
