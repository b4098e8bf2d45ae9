"""Level 2: the same REST API, records and errors, with tasks as Ray tasks and services on
Ray Serve, against a private local Ray."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from data_platform.local_executor import task_processes
from serverkit.procs import marked_processes
from serverkit.ray_runtime import HEAD_ENV, SERVE_ENV, SERVE_REPLICA_ENV, LocalRay
from tests.data_platform.test_errors import assert_error
from tests.ray.conftest import AUTH, START_TIMEOUT
from tests.support import (
    MNIST_DIR,
    PlatformServers,
    Server,
    dp_env,
    free_port,
    pid_alive,
    wait_until,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]
pytest.importorskip("ray", reason="Level 2 needs the ray extra: pip install -e '.[ray]'")

INGEST_PARAMS = {"limit": 1000, "normalize": True}
TRAIN_PARAMS = {"epochs": 1, "limit": 1000, "threads": 1}


def job(name: str, script: str, output: str, input: str = "raw/mnist", **params) -> dict:
    return {"name": name, "input": input, "script": script, "params": params, "output": output}


def wait_job(api: httpx.Client, path: str, timeout: float = 120) -> dict:
    def done() -> dict | None:
        task = api.get(path).json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout, interval=0.2)


def test_both_services_run_on_ray(platform: PlatformServers):
    assert httpx.get(f"{platform.dp.url}/health").json()["runtime"] == "ray"
    assert httpx.get(f"{platform.aip.url}/health").json()["runtime"] == "ray"


def test_two_tasks_run_at_once_and_cancel_kills_one(api: httpx.Client, root: Path):
    pid_file = root / "sleeper.pid"
    sleeper = api.post(
        "/api/v1/ingestion-tasks",
        json=job("sleeper", "fixtures/sleep_forever.py", "ds_sleep", pid_file=str(pid_file)),
    ).json()
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=60))
    quick = api.post("/api/v1/ingestion-tasks", json=job("quick", "fixtures/exit_ok.py", "ds_q"))
    assert quick.status_code == 201, quick.text
    done = wait_job(api, f"/api/v1/ingestion-tasks/{quick.json()['id']}")
    assert done["status"] == "completed", done
    assert "hello from exit_ok" in api.get(f"/api/v1/ingestion-tasks/{done['id']}/logs").text

    path = f"/api/v1/ingestion-tasks/{sleeper['id']}"
    assert api.get(path).json()["status"] == "running"  # the quick one did not wait for it
    r = api.post(f"{path}/cancel")
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "failed" and cancelled["error"]["reason"] == "cancelled"
    wait_until(lambda: not pid_alive(pid), timeout=10)
    assert task_processes(sleeper["id"]) == []
    assert "sleeping" in api.get(f"{path}/logs").text
    # The intervals overlap: the quick task started and ended while the sleeper ran.
    assert cancelled["started_at"] < done["started_at"] < done["completed_at"]
    assert done["completed_at"] < cancelled["completed_at"]


def test_a_resource_request_is_checked_against_the_local_ray(
    api: httpx.Client, platform: PlatformServers
):
    ok = {**job("res-ok", "fixtures/exit_ok.py", "ds_res"), "resources": {"cpus": 1}}
    r = api.post("/api/v1/ingestion-tasks", json=ok)  # the AI Platform passes it on
    assert r.status_code == 201, r.text
    done = wait_job(api, f"/api/v1/ingestion-tasks/{r.json()['id']}")
    assert done["status"] == "completed", done
    record = httpx.get(
        f"{platform.dp.url}/api/v1/tasks/{done['id']}", headers=AUTH, timeout=30
    ).json()
    assert record["resources"] == {"cpus": 1.0}
    # The local Ray is all there is: what it cannot place would wait forever, so it is 400.
    for bad, what in (
        ({"cpus": 64}, "'CPU'"),
        ({"worker1": 1}, "'worker1'"),
        ({"CPU": 1}, "Ray's own"),
    ):
        r = api.post("/api/v1/ingestion-tasks", json={**ok, "name": "res-bad", "resources": bad})
        assert what in assert_error(r, 400, "INVALID_REQUEST")["message"], bad


def mnist_test_images(count: int) -> list[str]:
    """The first ``count`` MNIST test images, base64 of 784 raw bytes each."""
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as fh:
        raw = fh.read(16 + 784 * count)[16:]
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(count, 784)
    return [base64.b64encode(row.tobytes()).decode() for row in pixels]


def ray_process(head: LocalRay, title: str) -> tuple[dict[str, str], int]:
    """The environment and niceness of the head's process named ``title`` by Ray."""
    for pid in marked_processes(HEAD_ENV, str(head.temp_dir)):
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            env = dict(e.decode(errors="replace").partition("=")[::2] for e in raw if e)
            return env, os.getpriority(os.PRIO_PROCESS, pid)
    raise AssertionError(f"no process {title!r} in the Ray at {head.temp_dir}")


def assert_serve_tuned(head: LocalRay, service_id: str) -> None:
    """The replica and the proxy run with Serve's request-path switches, at the priority of
    a Level 1 model server (not Ray's worker default of nice 15)."""
    replica_env, replica_nice = ray_process(head, f"ray::ServeReplica:{service_id}:")
    proxy_env, proxy_nice = ray_process(head, "ray::ProxyActor")
    assert replica_nice == proxy_nice == 0
    assert SERVE_REPLICA_ENV.items() <= replica_env.items()
    assert SERVE_ENV.items() <= proxy_env.items()


def test_ingest_train_serve_predict_on_ray(
    api: httpx.Client, local_ray: LocalRay, platform: PlatformServers
):
    ingest = api.post(
        "/api/v1/ingestion-tasks",
        json=job("l2-mnist", "pipelines/mnist_clean.py", "l2_mnist", **INGEST_PARAMS),
    )
    assert ingest.status_code == 201, ingest.text
    ingested = wait_job(api, f"/api/v1/ingestion-tasks/{ingest.json()['id']}", timeout=180)
    assert ingested["status"] == "completed", ingested
    train = api.post(
        "/api/v1/training-tasks",
        json=job("l2-mlp", "training/mnist_mlp.py", "l2_mlp", input="l2_mnist", **TRAIN_PARAMS),
    )
    assert train.status_code == 201, train.text
    trained = wait_job(api, f"/api/v1/training-tasks/{train.json()['id']}", timeout=180)
    assert trained["status"] == "completed", trained
    assert trained["metrics"]["test_accuracy"] > 0.5

    created = api.post("/api/v1/inference-services", json={"name": "l2-digits", "model": "l2_mlp"})
    assert created.status_code == 201, created.text
    service = created.json()
    assert service["status"] == "running"
    # The endpoint is the replica's own (Serve's direct ingress), on a port of its own, not
    # the proxy's; the proxy's route answers too.
    endpoint = service["endpoint"]
    assert endpoint == f"http://127.0.0.1:{service['port']}/{service['id']}"
    proxy = f"http://127.0.0.1:{platform.aip.env['AIP_RAY_SERVE_PORT']}/{service['id']}"
    assert proxy != endpoint and httpx.get(f"{proxy}/health").status_code == 200
    other = {"name": "l2-elsewhere", "model": "l2_mlp", "port": free_port()}
    assert_error(api.post("/api/v1/inference-services", json=other), 400, "INVALID_REQUEST")

    images = mnist_test_images(4)
    path = f"/api/v1/inference-services/{service['id']}/predict"
    through = api.post(path, json={"image": images[0]})
    assert through.status_code == 200, through.text
    assert through.json()["prediction"] in range(10)
    # The replica needs the key as a Level 1 model server does (it never is in its env).
    refused = httpx.post(f"{endpoint}/predict", json={"image": images[0]}, timeout=60)
    assert_error(refused, 401, "UNAUTHORIZED")
    direct = httpx.post(f"{endpoint}/predict", json={"image": images[0]}, headers=AUTH, timeout=60)
    assert direct.status_code == 200, direct.text
    assert direct.json()["prediction"] == through.json()["prediction"]
    assert_serve_tuned(local_ray, service["id"])
    batch = api.post(path, json={"images": images}).json()["predictions"]
    assert len(batch) == 4 and batch[0]["prediction"] == through.json()["prediction"]
    # Errors keep Level 1's envelope: it is the same model server app.
    assert_error(api.post(path, json={"image": "not base64!"}), 400, "INVALID_REQUEST")
    assert_error(httpx.post(f"{endpoint}/predict", json={}, headers=AUTH), 400, "INVALID_REQUEST")
    assert "serving" in api.get(f"/api/v1/inference-services/{service['id']}/logs").text

    assert api.delete(f"/api/v1/inference-services/{service['id']}").status_code == 204
    with pytest.raises(httpx.ConnectError):  # the replica is gone
        httpx.get(f"{endpoint}/health")
    assert httpx.get(f"{proxy}/health").status_code == 404  # and so is the Serve app
    assert_error(api.get(f"/api/v1/inference-services/{service['id']}"), 404, "SERVICE_NOT_FOUND")


def own_heads() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("lakekit-ray-*"))


def test_a_service_alone_starts_its_own_ray_and_stops_only_that(
    local_ray: LocalRay, tmp_path: Path
):
    """DP_RUNTIME=ray without an address: the Data Platform starts a private Ray, and on
    shutdown stops its tasks and that Ray, not the module's."""
    (tmp_path / "data").mkdir()
    before = own_heads()
    server = Server(
        "data_platform", dp_env(tmp_path, DP_RUNTIME="ray"), "DP_PORT", tmp_path / "dp.log"
    )
    server.start(timeout=START_TIMEOUT)
    try:
        (head,) = own_heads() - before
        assert marked_processes(HEAD_ENV, str(head))
        pid_file = tmp_path / "task.pid"
        body = {
            "script": "sleep_forever.py",
            "output": "datasets/s",
            "params": {"pid_file": str(pid_file)},
        }
        task = httpx.post(f"{server.url}/api/v1/tasks", json=body).json()
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), timeout=60))
    finally:
        server.stop()  # SIGTERM: a graceful shutdown
    assert server.proc is not None and server.proc.returncode in (0, -signal.SIGTERM)
    assert not pid_alive(pid)
    assert marked_processes(HEAD_ENV, str(head)) == [] and not head.exists()
    assert marked_processes(HEAD_ENV, str(local_ray.temp_dir))  # the module's Ray lives on
    # The task's record says why it ended (read back by a Level 1 Data Platform).
    again = Server("data_platform", dp_env(tmp_path), "DP_PORT", tmp_path / "dp2.log").start()
    try:
        error = httpx.get(f"{again.url}/api/v1/tasks/{task['id']}").json()["error"]
        assert error["reason"] == "interrupted"
    finally:
        again.stop()
