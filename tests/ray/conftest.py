"""Level 2 fixtures: one private local Ray per module, and both services joined to it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serverkit.ray_runtime import LocalRay
from tests.support import PlatformServers, free_port

# Starting Ray, then the services with Ray and Serve, takes ~30-60 s on 2 cores.
START_TIMEOUT = 180.0
# Level 2 runs with an API key: the Data Platform, the AI Platform and the Serve replicas
# all need it (tests send it as a user would).
KEY = "level2-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[LocalRay]:
    """A Ray head of our own (temp dir, ports, token), stopped after the module."""
    ray = LocalRay(num_cpus=2).start(timeout=START_TIMEOUT)
    yield ray
    ray.stop()


@pytest.fixture(scope="module")
def platform(
    local_ray: LocalRay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformServers]:
    """Both services with runtime=ray, joined to the module's Ray."""
    joined = {
        "RAY_ADDRESS": str(local_ray.address),
        "RAY_AUTH_TOKEN_PATH": str(local_ray.token_path),
    }
    servers = PlatformServers(
        tmp_path_factory.mktemp("level2"),
        DP_RUNTIME="ray",
        AIP_RUNTIME="ray",
        DP_API_KEY=KEY,
        AIP_API_KEY=KEY,
        AIP_RAY_SERVE_PORT=str(free_port()),  # Serve's proxy, beside the replicas' own ports
        **{f"DP_{k}": v for k, v in joined.items()},
        **{f"AIP_{k}": v for k, v in joined.items()},
    )
    try:
        # Side by side: each spends most of its start importing Ray and joining it.
        with ThreadPoolExecutor(2) as pool:
            started = [pool.submit(s.start, START_TIMEOUT) for s in (servers.dp, servers.aip)]
            for future in started:
                future.result()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def api(platform: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=180, headers=AUTH) as client:
        yield client


@pytest.fixture
def root(platform: PlatformServers) -> Path:
    return Path(platform.dp.env["DP_LAKE_ROOT"]).parent
