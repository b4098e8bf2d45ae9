"""The fault-injection tier: every test here is marked ``faults``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)


from tests.faults.support import dp_factory  # noqa: E402, F401 - a fixture for the tier
