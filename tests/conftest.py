from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Server, dp_env


@pytest.fixture
def dp_root(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.fixture
def data_platform(dp_root: Path) -> Iterator[Server]:
    """A real Data Platform process on a free port, lake under tmp_path, fixture scripts."""
    server = Server("data_platform", dp_env(dp_root), "DP_PORT", dp_root / "dp.log").start()
    yield server
    server.stop()


@pytest.fixture
def dp(data_platform: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=data_platform.url, timeout=30) as client:
        yield client
