"""Fixtures and hooks shared with tests/cli (which imports them from here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aip import Client
from tests.sdk import shared
from tests.support import PlatformServers


@pytest.fixture
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> PlatformServers:
    """Both services as real processes, shared with tests/cli; stopped by ``after_test``.

    Function-scoped on purpose: pytest must not cache servers that ``after_test`` stopped.
    """
    return shared.get(tmp_path_factory, request.session)


@pytest.fixture
def served(platform: PlatformServers) -> tuple[str, str]:
    """(model, service): a model trained and served through the platform (shared)."""
    return shared.served()


@pytest.fixture
def client(platform: PlatformServers) -> Iterator[Client]:
    with Client(platform.url, timeout=30) as c:
        yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    shared.reorder(items)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    shared.after_test(item, nextitem)


def pytest_sessionfinish() -> None:
    shared.stop()  # interrupted runs too
