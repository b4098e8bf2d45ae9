"""``make demo``: the MNIST lifecycle through the REST API, design steps 1-7.

Starts both services, ingests the shipped MNIST, trains the CNN, serves it, predicts a few
hundred real test digits through the platform and through the service's own endpoint, prints
every response, stops everything, and exits 0 only if every step succeeded.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from lakestack.launcher import Platform
from serverkit.net import free_port

MNIST = Path("data/raw/mnist")
PREDICT_COUNT = 300
MIN_ACCURACY = 0.97


class StepFailed(Exception):
    pass


def show(title: str, response: httpx.Response) -> Any:
    print(f"\n== {title}\n{response.request.method} {response.request.url.path}")
    try:
        body = response.json()
    except ValueError:
        body = response.text
    text = json.dumps(body, indent=2) if not isinstance(body, str) else body
    lines = text.splitlines()
    print(
        f"{response.status_code}\n" + "\n".join(lines[:40]) + ("\n..." if len(lines) > 40 else "")
    )
    if response.status_code >= 400:
        raise StepFailed(f"{title}: HTTP {response.status_code}")
    return body


def wait_task(api: httpx.Client, path: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    shown = None
    while time.monotonic() < deadline:
        task = api.get(path).json()
        point = task.get("progress")
        if point and point != shown:
            shown = point
            print("   progress:", {k: v for k, v in point.items() if k != "time"})
        if task["status"] in ("completed", "failed"):
            return task
        time.sleep(1)
    raise StepFailed(f"{path} did not finish within {timeout:g} s")


def load_test_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` official test images and labels."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read(), np.uint8, offset=8)[:count]
    return images, labels


def png_b64(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def run_steps(api: httpx.Client) -> float:
    # Step 1-2: ingest the shipped MNIST with the cleaning script, wait for it.
    task = show(
        "Step 1: create an ingestion task",
        api.post(
            "/api/v1/ingestion-tasks",
            json={
                "name": "mnist_ingestion",
                "input": "raw/mnist",
                "script": "pipelines/mnist_clean.py",
                "params": {"normalize": True, "flatten": True},
                "output": "mnist_clean",
            },
        ),
    )
    done = wait_task(api, f"/api/v1/ingestion-tasks/{task['id']}", 600)
    show("Step 2: ingestion task status", api.get(f"/api/v1/ingestion-tasks/{task['id']}"))
    if done["status"] != "completed":
        raise StepFailed(f"ingestion failed: {done['error']}")

    # Step 3: the dataset in the lake.
    show("Step 3: the dataset", api.get("/api/v1/datasets/mnist_clean"))

    # Step 4-5: train the CNN with its default params, following progress.
    params: dict[str, Any] = {"device": "cpu"}
    if os.environ.get("DEMO_EPOCHS"):
        params["epochs"] = int(os.environ["DEMO_EPOCHS"])
    task = show(
        "Step 4: create a training task",
        api.post(
            "/api/v1/training-tasks",
            json={
                "name": "mnist_cnn_v1",
                "input": "mnist_clean",
                "script": "training/mnist_cnn.py",
                "params": params,
                "output": "mnist_cnn_v1",
            },
        ),
    )
    done = wait_task(api, f"/api/v1/training-tasks/{task['id']}", 1800)
    show("Step 5: training task status", api.get(f"/api/v1/training-tasks/{task['id']}"))
    if done["status"] != "completed":
        raise StepFailed(f"training failed: {done['error']}")
    show("The model record", api.get("/api/v1/models/mnist_cnn_v1"))

    # Step 6: serve it.
    service = show(
        "Step 6: start an inference service",
        api.post(
            "/api/v1/inference-services",
            json={"name": "mnist_predictor", "model": "mnist_cnn_v1", "device": "cpu"},
        ),
    )
    try:
        return predict_digits(api, service)
    finally:
        show("Stop the service", api.delete(f"/api/v1/inference-services/{service['id']}"))


def predict_digits(api: httpx.Client, service: dict[str, Any]) -> float:
    images, labels = load_test_digits(PREDICT_COUNT)
    # Step 7: one digit through the platform route, then all of them in batches.
    first = show(
        f"Step 7: predict one test digit (label {labels[0]})",
        api.post(
            f"/api/v1/inference-services/{service['id']}/predict",
            json={"image": png_b64(images[0])},
        ),
    )
    predictions = [first["prediction"]]
    for start in range(1, PREDICT_COUNT, 100):
        batch = [png_b64(im) for im in images[start : start + 100]]
        r = api.post(f"/api/v1/inference-services/{service['id']}/predict", json={"images": batch})
        if r.status_code != 200:
            show("batch predict", r)
        predictions += [p["prediction"] for p in r.json()["predictions"]]
    accuracy = float(np.mean(np.array(predictions) == labels))
    print(f"\nPlatform route: {accuracy:.3f} accuracy on {PREDICT_COUNT} real test digits")

    # The same digits through the service's own endpoint.
    with httpx.Client(base_url=service["endpoint"], timeout=60) as own:
        r = own.post("/predict", json={"images": [png_b64(im) for im in images]})
        direct = [
            p["prediction"] for p in show("Predict at the service's endpoint", r)["predictions"]
        ]
    direct_accuracy = float(np.mean(np.array(direct) == labels))
    print(f"Service endpoint: {direct_accuracy:.3f} accuracy on {PREDICT_COUNT} test digits")
    return min(accuracy, direct_accuracy)


def main() -> int:
    lake = os.environ.get("DP_LAKE_ROOT", "lance_storage")
    env = {
        "DP_LAKE_ROOT": lake,
        "DP_PORT": os.environ.get("DP_PORT", str(free_port("127.0.0.1"))),
        "AIP_PORT": os.environ.get("AIP_PORT", str(free_port("127.0.0.1"))),
    }
    logs = Path(tempfile.mkdtemp(prefix="aip-demo-"))
    platform = Platform(env, log_dir=logs)
    print(f"Starting the platform (lake: {lake}/, service logs: {logs}) ...")
    started = time.monotonic()
    try:
        platform.start()
        with httpx.Client(base_url=platform.url, timeout=120) as api:
            accuracy = run_steps(api)
    except (StepFailed, RuntimeError, httpx.HTTPError) as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        platform.stop()
    elapsed = time.monotonic() - started
    if accuracy < MIN_ACCURACY:
        print(f"\nDEMO FAILED: accuracy {accuracy:.3f} < {MIN_ACCURACY}", file=sys.stderr)
        return 1
    print(f"\nDemo complete in {elapsed:.0f} s: every step succeeded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
