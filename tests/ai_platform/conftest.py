from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.small_model import train_mlp
from tests.support import PlatformServers


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    """Both services, real processes, one lake for the whole module."""
    servers = PlatformServers(tmp_path_factory.mktemp("platform")).start()
    yield servers
    servers.stop()


def _client_of(servers: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def api(platform: PlatformServers) -> Iterator[httpx.Client]:
    yield from _client_of(platform)


@pytest.fixture
def root(platform: PlatformServers) -> Path:
    return Path(platform.dp.env["DP_LAKE_ROOT"]).parent


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    """Both services with a trained model in the lake; the AI Platform's state by ``file://``
    URI and its model-server logs in a directory of their own."""
    root = tmp_path_factory.mktemp("serving")
    train_mlp(root / "lake")
    servers = PlatformServers(
        root, AIP_STATE_DIR=f"file://{root}/state", AIP_LOG_DIR=str(root / "service-logs")
    ).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def sapi(serving: PlatformServers) -> Iterator[httpx.Client]:
    yield from _client_of(serving)
