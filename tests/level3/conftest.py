"""Level 3 fixtures: a real S3 endpoint (SeaweedFS) and a multi-node Ray cluster on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.level3.platform import DataPlatform
from tests.level3.ray_cluster import RayCluster, describe, local_cluster
from tests.level3.s3 import S3Endpoint, SeaweedS3


@pytest.fixture(scope="session", autouse=True)
def no_aws_lookups() -> Iterator[None]:
    """No SDK in this tier may go looking for AWS (instance metadata, ~/.aws profiles)."""
    names = ("AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """One SeaweedFS endpoint for the session; each test writes under its own prefix."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_prefix(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "-").replace("]", "")


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[RayCluster]:
    """A head (127.0.0.2) and two workers (127.0.0.3, .4) of one CPU each, for the session:
    starting one costs ~30 s on an idle machine, so every module shares it."""
    cluster = local_cluster()
    try:
        yield cluster.start(timeout=180.0)
    finally:
        cluster.stop()
    assert not cluster.pids(), f"outlived the cluster: {describe(cluster.pids())}"


@pytest.fixture(scope="module")
def ray_cluster(_session_cluster: RayCluster) -> Iterator[RayCluster]:
    """The session's cluster with every node alive: a worker a module killed (a lost node) is
    started again, as a new node on the same address, as the module ends (so its start
    overlaps whatever runs next); the next module waits until it has joined."""
    yield _session_cluster.revive(timeout=180.0)
    _session_cluster.revive(wait=False)


@pytest.fixture(scope="session")
def dp(
    _session_cluster: RayCluster, s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DataPlatform]:
    """The Data Platform joined to the session's cluster, its lake on the endpoint; tasks of
    each test have names of their own, so modules share it."""
    platform = DataPlatform(tmp_path_factory.mktemp("l3tasks"), _session_cluster, s3)
    platform.start()
    try:
        yield platform
    finally:
        if platform.server is not None:
            platform.server.stop()
