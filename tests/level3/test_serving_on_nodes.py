"""Level 3 serving: a model trained by a task on a worker node into the lake on S3, served by
Ray Serve with two replicas, one per node, each loading the model from the endpoint; a replica
killed under load is replaced while the other answers. Then the whole path through the AI
Platform: ingest on worker1, train on worker2, serve, predict, all in the lake on S3."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lakeapi.schemas import Service
from tests.level3.platform import DataPlatform, lake_keys
from tests.level3.ray_cluster import RayCluster
from tests.level3.s3 import S3Endpoint
from tests.support import MNIST_DIR, Server, wait_until

pytestmark = [
    pytest.mark.level3,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:lance is not fork-safe"),
]

INPUT = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}
_RAY_ENV = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


@pytest.fixture(scope="module")
def model_path(dp: DataPlatform, s3: S3Endpoint) -> str:
    """A model trained by a task on worker1, into the lake on the endpoint."""
    task = dp.submit("tiny", "worker1", script="train_tiny.py", output="models/tiny")
    done = dp.ended(task["id"], timeout=180)
    assert done["status"] == "completed", done
    assert lake_keys(s3, dp, "models/tiny.lance/_versions/")
    return str(done["output_path"])


@pytest.fixture(scope="module")
def backend(ray_cluster: RayCluster, s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory):
    """The AI Platform's Ray Serve backend, in this process, joined to the cluster: two
    replicas per service, at most one per node."""
    from ai_platform.serving.ray_backend import RayServeBackend
    from ai_platform.settings import AIPlatformSettings

    saved = {k: os.environ.get(k) for k in _RAY_ENV}
    settings = AIPlatformSettings(
        state_dir=s3.uri("serving-state"),
        state_storage_options=s3.storage_options,
        runtime="ray",
        ray_address=ray_cluster.address,
        ray_auth_token_path=ray_cluster.token_path,
        serving_start_timeout=120,
    )
    serving = RayServeBackend(settings, replicas=2, replicas_per_node=1)
    try:
        yield serving
    finally:
        serving.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def replicas() -> list[Any]:
    from ray.util.state import list_actors

    return [
        a
        for a in list_actors(filters=[("state", "=", "ALIVE")], detail=True)
        if "ServeReplica" in a.class_name
    ]


def test_two_replicas_one_per_node_answer_and_a_killed_one_is_replaced(
    backend: Any, model_path: str, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    port, endpoint = backend.place("svc-l3", None, set())
    service = Service(
        id="svc-l3", name="tiny", model="tiny", model_path=model_path, port=port,
        endpoint=endpoint,
    )  # fmt: skip
    backend.start(service, tmp_path / "svc.log")
    infer = f"{endpoint}/v2/models/tiny/infer"

    def healthy() -> bool:
        backend.refresh()
        failed = backend.exit_status(service)
        assert failed is None, failed
        return httpx.get(f"{endpoint}/health", timeout=5).status_code == 200

    try:
        wait_until(healthy, 180, 1)
    except AssertionError:
        from ray import serve

        raise AssertionError(str(serve.status())[-3000:]) from None
    wait_until(lambda: len(replicas()) == 2, 120, 1)
    first = replicas()
    nodes = {a.node_id for a in first}
    assert len(nodes) == 2, "max_replicas_per_node=1 put each replica on its own node"
    answer = httpx.post(infer, json={"inputs": [INPUT]}, timeout=30)
    assert answer.status_code == 200, answer.text

    results: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    results.append(client.post(infer, json={"inputs": [INPUT]}).status_code)
                except httpx.HTTPError:
                    results.append(0)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: len(results) > 20, 60, 0.1)
        victim = first[0]
        os.kill(victim.pid, signal.SIGKILL)  # the replica's process, on its node
        killed_at = len(results)
        wait_until(lambda: {a.actor_id for a in replicas()} - {a.actor_id for a in first}, 120, 1)
        replaced = time.monotonic()
        wait_until(lambda: len(results) > killed_at + 50, 60, 0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    after = results[killed_at:]
    assert after.count(200) >= 50, "the other replica kept answering"
    assert after.count(200) / len(after) > 0.8, f"mostly answered: {after.count(200)}/{len(after)}"
    assert len(replicas()) == 2 and replaced
    assert httpx.post(infer, json={"inputs": [INPUT]}, timeout=30).status_code == 200
    backend.stop(service)
    assert httpx.post(infer, json={"inputs": [INPUT]}, timeout=30).status_code == 404


def test_the_serve_config_file_is_read_with_rays_own_schema(tmp_path: Path) -> None:
    from ai_platform.serving.ray_backend import serve_start_options

    config = Path(__file__).parents[2] / "deploy" / "k8s" / "serve-config.yaml"
    http, location = serve_start_options(config, {"host": "127.0.0.1", "port": 1})
    assert http["port"] == 8000 and http["request_timeout_s"] == 60 and location == "HeadOnly"
    bad = tmp_path / "bad.yaml"
    bad.write_text("proxy_location: HeadOnly\nno_such_key: 1\n")
    with pytest.raises(Exception, match="no_such_key"):
        serve_start_options(bad, {})


def mnist_test_images(count: int) -> list[str]:
    """The first ``count`` MNIST test images, base64 of 784 raw bytes each."""
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as fh:
        raw = fh.read(16 + 784 * count)[16:]
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(count, 784)
    return [base64.b64encode(row.tobytes()).decode() for row in pixels]


@pytest.fixture(scope="module")
def aip(
    dp: DataPlatform, ray_cluster: RayCluster, s3: S3Endpoint, backend: Any
) -> Iterator[httpx.Client]:
    """The AI Platform as a real process on Ray Serve on the cluster, its state on S3 (after
    ``backend``: Serve is already up, the AI Platform joins it)."""
    assert dp.server is not None
    env = {
        "AIP_DATA_PLATFORM_URL": dp.server.url,
        "AIP_STATE_DIR": s3.uri(f"{dp.root.name}/aip-state"),
        "AIP_STATE_STORAGE_OPTIONS": json.dumps(s3.storage_options),
        "AIP_LOG_DIR": str(dp.root / "aip-logs"),
        "AIP_RUNTIME": "ray",
        "AIP_RAY_ADDRESS": ray_cluster.address,
        "AIP_RAY_AUTH_TOKEN_PATH": str(ray_cluster.token_path),
        "AIP_SERVING_START_TIMEOUT": "180",
        # No AWS_* variables: the model check and the replicas reach the lake with the
        # platform's own storage options (AIP_LAKE_STORAGE_OPTIONS, else the state's).
    }
    server = Server("ai_platform", env, "AIP_PORT", dp.root / "aip.log").start(120)
    try:
        with httpx.Client(base_url=server.url, timeout=180) as client:
            yield client
    finally:
        server.stop()


def job(name: str, script: str, output: str, input: str, worker: str, **params: Any) -> dict:
    return {
        "name": name,
        "input": input,
        "script": script,
        "params": params,
        "output": output,
        "resources": {worker: 1},
    }


def ended(api: httpx.Client, path: str, timeout: float = 240) -> dict:
    def done() -> dict | None:
        task = api.get(path).json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout, interval=0.5)


def test_ingest_train_serve_predict_through_the_ai_platform_on_the_cluster(
    aip: httpx.Client, dp: DataPlatform, s3: S3Endpoint
) -> None:
    ingest = aip.post(
        "/api/v1/ingestion-tasks",
        json=job("l3-mnist", "pipelines/mnist_clean.py", "l3_mnist", "raw/mnist", "worker1",
                 limit=1000, normalize=True),
    )  # fmt: skip
    assert ingest.status_code == 201, ingest.text
    ingest_path = f"/api/v1/ingestion-tasks/{ingest.json()['id']}"
    ingested = ended(aip, ingest_path)
    assert ingested["status"] == "completed", ingested
    train = aip.post(
        "/api/v1/training-tasks",
        json=job("l3-mlp", "training/mnist_mlp.py", "l3_mlp", "l3_mnist", "worker2",
                 epochs=1, limit=1000, threads=1),
    )  # fmt: skip
    assert train.status_code == 201, train.text
    trained = ended(aip, f"/api/v1/training-tasks/{train.json()['id']}")
    assert trained["status"] == "completed", trained
    assert trained["metrics"]["test_accuracy"] > 0.5
    # Where each ran, from the Data Platform's records: the workers asked for.
    nodes = {t["name"]: t["node"] for t in httpx.get(dp.url, timeout=30).json()}
    assert nodes["l3-mnist"] == "127.0.0.3" and nodes["l3-mlp"] == "127.0.0.4"
    assert lake_keys(s3, dp, "datasets/l3_mnist.lance/_versions/")
    assert lake_keys(s3, dp, "models/l3_mlp.lance/_versions/")
    assert aip.get(f"{ingest_path}/logs").text, "the ingestion's log, from the lake"

    created = aip.post("/api/v1/inference-services", json={"name": "l3-digits", "model": "l3_mlp"})
    assert created.status_code == 201, created.text
    service = created.json()
    assert service["status"] == "running"
    images = mnist_test_images(4)
    path = f"/api/v1/inference-services/{service['id']}/predict"
    through = aip.post(path, json={"image": images[0]})
    assert through.status_code == 200, through.text
    assert through.json()["prediction"] in range(10)
    batch = aip.post(path, json={"images": images}).json()["predictions"]
    assert len(batch) == 4 and batch[0]["prediction"] == through.json()["prediction"]
    assert aip.delete(f"/api/v1/inference-services/{service['id']}").status_code == 204
