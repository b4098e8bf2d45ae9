"""Vector search through the real Data Platform on a real Lance dataset: flat without an
index, the IVF index once built, and the errors."""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from tests.data_platform.test_errors import assert_error

DIM = 16
ROWS = 2000


@pytest.fixture
def vectors(dp_root: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, DIM)).astype(np.float32) * 10
    labels = np.arange(ROWS) % 4
    points = centres[labels] + rng.normal(size=(ROWS, DIM)).astype(np.float32)
    table = pa.table(
        {
            "id": pa.array(np.arange(ROWS), pa.int64()),
            "label": pa.array(labels, pa.int64()),
            "image": pa.array([b"\x00\x01"] * ROWS, pa.binary()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(points.reshape(-1)), DIM),
        }
    )
    lance.write_dataset(table, dp_root / "lake" / "datasets" / "vecs.lance")
    return points


def exact(points: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(((points - query) ** 2).sum(axis=1))[:k])


def test_flat_search_by_vector_is_exact_and_returns_the_asked_columns(dp, vectors):
    query = vectors[7] + 0.01
    r = dp.post("/api/v1/datasets/vecs/search", json={"vector": query.tolist(), "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["indexed"] is False and body["dataset_version"] == 1
    assert [h["row_id"] for h in body["hits"]] == exact(vectors, query, 5)
    distances = [h["distance"] for h in body["hits"]]
    assert distances == sorted(distances)
    # Default columns: everything but vectors and binaries.
    assert set(body["hits"][0]["values"]) == {"id", "label"}
    r = dp.post(
        "/api/v1/datasets/vecs/search",
        json={"vector": query.tolist(), "k": 2, "columns": ["label", "image"]},
    )
    assert r.json()["hits"][0]["values"] == {"label": 3, "image": "AAE="}


def test_search_by_row_id_and_with_a_filter(dp, vectors):
    r = dp.post("/api/v1/datasets/vecs/search", json={"row_id": 10, "k": 3})
    hits = r.json()["hits"]
    assert hits[0]["row_id"] == 10 and hits[0]["distance"] == pytest.approx(0.0, abs=1e-5)
    r = dp.post(
        "/api/v1/datasets/vecs/search",
        json={"row_id": 10, "k": 20, "filter": "label = 1"},
    )
    hits = r.json()["hits"]
    assert len(hits) == 20 and {h["values"]["label"] for h in hits} == {1}


def test_an_index_is_built_and_then_answers(dp, vectors):
    r = dp.post(
        "/api/v1/datasets/vecs/indexes",
        json={"column": "embedding", "index_type": "IVF_FLAT", "num_partitions": 8},
    )
    assert r.status_code == 201, r.text
    assert r.json()["dataset_version"] == 2 and r.json()["index_type"] == "IVF_FLAT"
    listed = dp.get("/api/v1/datasets/vecs/indexes").json()
    assert [(i["name"], i["column"]) for i in listed] == [("embedding_idx", "embedding")]
    query = vectors[123]
    r = dp.post(
        "/api/v1/datasets/vecs/search", json={"vector": query.tolist(), "k": 10, "nprobes": 8}
    )
    body = r.json()
    assert body["indexed"] is True
    # Every partition probed: an IVF_FLAT index finds the exact neighbours.
    assert [h["row_id"] for h in body["hits"]] == exact(vectors, query, 10)
    r = dp.post(
        "/api/v1/datasets/vecs/indexes",
        json={"index_type": "IVF_PQ", "num_partitions": 4, "num_sub_vectors": 4},
    )
    assert r.status_code == 201, r.text
    hits = dp.post("/api/v1/datasets/vecs/search", json={"row_id": 5, "k": 10}).json()["hits"]
    assert sum(h["values"]["label"] == 1 for h in hits) >= 9  # same cluster as row 5


def test_search_errors(dp, vectors):
    url = "/api/v1/datasets/vecs/search"
    err = assert_error(dp.post(url, json={"k": 3}), 400, "INVALID_REQUEST")
    assert "exactly one" in err["message"]
    both = {"vector": [0.0] * DIM, "row_id": 1}
    assert_error(dp.post(url, json=both), 400, "INVALID_REQUEST")
    err = assert_error(dp.post(url, json={"vector": [0.0] * 3}), 400, "INVALID_REQUEST")
    assert "16 finite numbers" in err["message"]
    err = assert_error(dp.post(url, json={"row_id": 1, "column": "label"}), 400, "INVALID_REQUEST")
    assert "not a vector column" in err["message"]
    err = assert_error(dp.post(url, json={"row_id": 1, "column": "nope"}), 400, "INVALID_REQUEST")
    assert "run a batch inference" in err["message"]
    err = assert_error(dp.post(url, json={"input": [0] * 784}), 400, "INVALID_REQUEST")
    assert "needs 'model'" in err["message"]
    r = dp.post(url, json={"input": [0] * 784, "model": "nope"})
    assert_error(r, 404, "MODEL_NOT_FOUND")
    r = dp.post(url, json={"row_id": 1, "columns": ["nope"]})
    assert_error(r, 400, "INVALID_REQUEST")
    r = dp.post(url, json={"row_id": 1, "filter": "nope = = 1"})
    assert_error(r, 400, "INVALID_REQUEST")
    assert_error(dp.post(url, json={"row_id": 1, "k": 0}), 400, "INVALID_REQUEST")
    r = dp.post("/api/v1/datasets/none/search", json={"row_id": 1})
    assert_error(r, 404, "DATASET_NOT_FOUND")
    r = dp.post("/api/v1/datasets/vecs/indexes", json={"index_type": "BTREE"})
    assert_error(r, 400, "INVALID_REQUEST")
