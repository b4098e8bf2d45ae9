"""Similar-example search on real MNIST through both services: a CNN trained by a training
task, its embeddings written by a batch-inference task, then digits searched by image."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from lakestack.demo import load_test_digits
from tests.ai_platform.test_jobs import wait_job
from tests.data_platform.test_errors import assert_error
from tests.e2e.test_mnist_lifecycle import png_b64
from tests.lakekit.mnist_fixture import write_mnist_lance
from tests.support import PlatformServers

pytestmark = [pytest.mark.slow]

QUERIES = 100
MIN_MAJORITY = 95  # of 100: the top-10 majority label is the query's label
# Half the train split keeps the test's two CNN passes (training, batch inference) within
# minutes on 2 busy cores; 30k rows still train the CNN to about 98 %.
TRAIN = "split = 'train' AND id < 30000"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    root = tmp_path_factory.mktemp("search")
    write_mnist_lance(root / "lake" / "datasets" / "mnist.lance", 60000, 10000)
    servers = PlatformServers(root).start()
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def api(servers: PlatformServers) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def embedded(api: httpx.Client, servers: PlatformServers) -> dict:
    # One torch thread: on 2 busy cores two threads train 2-4x slower (OpenMP threads waiting
    # on each other, as tests/ui/conftest.py found), and the thread count does not change the
    # model's accuracy.
    r = api.post(
        "/api/v1/training-tasks",
        json={
            "name": "cnn",
            "input": "mnist",
            "script": "training/mnist_cnn.py",
            "params": {"epochs": 1, "seed": 1, "limit": 30000, "threads": 1},
            "output": "cnn",
        },
    )
    assert r.status_code == 201, r.text
    task = wait_job(api, f"/api/v1/training-tasks/{r.json()['id']}", timeout=1500)
    assert task["status"] == "completed", task["error"]
    assert task["metrics"]["test_accuracy"] >= 0.97
    r = api.post(
        "/api/v1/batch-inference-tasks",
        json={"model": "cnn", "dataset": "mnist", "filter": TRAIN},
    )
    assert r.status_code == 201, r.text
    done = wait_job(api, f"/api/v1/batch-inference-tasks/{r.json()['id']}", timeout=600)
    assert done["status"] == "completed", done["error"]
    assert done["stats"]["rows"] == 30000 and done["kind"] == "batch_inference"
    # The first query that embeds an input imports torch and loads the model in the Data
    # Platform: on 2 busy cores that can outlast the AI Platform's upstream timeout, so it is
    # made here, at the Data Platform, without one.
    image = load_test_digits(1)[0][0]
    warm = httpx.post(
        f"{servers.dp.url}/api/v1/datasets/mnist/search",
        json={"input": image.reshape(-1).tolist(), "model": "cnn", "filter": TRAIN},
        timeout=600,
    )
    assert warm.status_code == 200, warm.text
    return done


def majority_hits(api: httpx.Client, images: np.ndarray, labels: np.ndarray, **extra) -> int:
    right = 0
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        query = png_b64(image) if i % 2 else image.reshape(-1).tolist()  # both input forms
        r = api.post(
            "/api/v1/datasets/mnist/search",
            json={
                "input": query,
                "model": "cnn",
                "k": 10,
                "columns": ["label"],
                "filter": TRAIN,
                **extra,
            },
        )
        assert r.status_code == 200, r.text
        votes = Counter(h["values"]["label"] for h in r.json()["hits"])
        right += votes.most_common(1)[0][0] == label
    return right


def test_search_by_image_finds_neighbours_of_the_same_digit(api, embedded):
    images, labels = load_test_digits(QUERIES)
    assert majority_hits(api, images, labels) >= MIN_MAJORITY


def test_search_uses_the_index_once_built(api, embedded):
    r = api.post("/api/v1/datasets/mnist/indexes", json={"index_type": "IVF_PQ"})
    assert r.status_code == 201, r.text
    images, labels = load_test_digits(QUERIES)
    r = api.post(
        "/api/v1/datasets/mnist/search",
        json={"input": images[0].reshape(-1).tolist(), "model": "cnn", "k": 10, "filter": TRAIN},
    )
    assert r.json()["indexed"] is True
    assert majority_hits(api, images, labels, nprobes=32, refine_factor=5) >= MIN_MAJORITY


def test_lineage_and_batch_inference_records_through_the_ai_platform(api, embedded):
    lin = api.get("/api/v1/models/cnn/lineage").json()
    assert lin["training"]["script"] == "training/mnist_cnn.py"
    assert lin["dataset"] == "mnist" and lin["dataset_version"] == 1
    assert len(lin["training"]["script_sha256"]) == 64
    listed = api.get("/api/v1/batch-inference-tasks").json()
    assert [t["id"] for t in listed] == [embedded["id"]]
    r = api.get(f"/api/v1/batch-inference-tasks/{lin['training']['id']}")
    assert_error(r, 404, "TASK_NOT_FOUND")
    r = api.post("/api/v1/batch-inference-tasks", json={"model": "cnn"})
    assert_error(r, 400, "INVALID_REQUEST")


def test_search_names_an_exact_version(api, embedded):
    latest = api.post("/api/v1/datasets/mnist/search", json={"row_id": 0, "k": 3})
    assert latest.status_code == 200, latest.text
    version = latest.json()["dataset_version"]
    vector = [0.0] * 128
    pinned = api.post(f"/api/v1/datasets/mnist@{version}/search", json={"vector": vector})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["dataset_version"] == version
    # Version 1 is the dataset before the batch inference added its embedding column.
    r = api.post("/api/v1/datasets/mnist@1/search", json={"vector": vector})
    assert "no column 'embedding'" in assert_error(r, 400, "INVALID_REQUEST")["message"]
    r = api.post("/api/v1/datasets/mnist@999/search", json={"vector": vector})
    assert_error(r, 404, "VERSION_NOT_FOUND")
    r = api.post("/api/v1/datasets/mnist@1/indexes", json={"index_type": "IVF_PQ"})
    assert_error(r, 400, "INVALID_REQUEST")
