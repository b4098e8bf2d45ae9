"""The model server's hot routes (``fast_path.HotRoutes``) answer byte for byte as the FastAPI
routes of the same paths do, and still go through Guard and the metrics."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.testclient import TestClient

from ai_platform.serving.model_server import create_model_app
from lakeapi.errors import InvalidRequest
from tests.lakekit.mnist_fixture import mnist_arrays
from tests.serving.test_generic_runner import tabular_rows, write_tabular_model

DIGITS, _ = mnist_arrays("test", 4)
IMAGES = [base64.b64encode(d.tobytes()).decode() for d in DIGITS]


@pytest.fixture(scope="module")
def clients(model_path: str) -> Iterator[tuple[TestClient, TestClient]]:
    """The whole app (hot routes in front) and its router alone (the FastAPI routes; with the
    exit stack FastAPI's own middleware gives them)."""
    app = create_model_app(model_path, model_name="mnist", api_key="k")
    with TestClient(app) as whole, TestClient(AsyncExitStackMiddleware(app.router)) as routes:
        whole.headers["Authorization"] = "Bearer k"
        yield whole, routes


def infer_binary(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + x.tobytes(), headers


@pytest.mark.parametrize(
    "body",
    [{"image": IMAGES[0]}, {"images": IMAGES}],
    ids=["image", "images"],
)
def test_predict_answers_as_the_route_does(
    clients: tuple[TestClient, TestClient], body: dict
) -> None:
    whole, routes = clients
    fast, slow = whole.post("/predict", json=body), routes.post("/predict", json=body)
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"


def test_infer_answers_as_the_route_does(clients: tuple[TestClient, TestClient]) -> None:
    whole, routes = clients
    meta = whole.get("/v2/models/mnist").json()
    shape = [1, *[abs(d) for d in meta["inputs"][0]["shape"][1:]]]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    body, headers = infer_binary(x)
    for path in ("/v2/models/mnist/infer", "/v2/models/mnist/versions/1/infer"):
        fast = whole.post(path, content=body, headers=headers)
        slow = routes.post(path, content=body, headers=headers)
        assert fast.status_code == slow.status_code == 200, fast.text
        assert fast.content == slow.content
        length = int(fast.headers["inference-header-content-length"])
        assert length == int(slow.headers["inference-header-content-length"])
        logits = json.loads(fast.content[:length])["outputs"][0]
        assert logits["parameters"]["binary_data_size"] == 4 * int(np.prod(logits["shape"]))
        assert len(struct.unpack(f"<{np.prod(logits['shape'])}f", fast.content[length:])) > 0
    plain = {"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                         "data": x.ravel().tolist()}]}  # fmt: skip
    fast = whole.post("/v2/models/mnist/infer", json=plain)
    slow = routes.post("/v2/models/mnist/infer", json=plain)
    assert fast.status_code == 200 and fast.content == slow.content


def test_refusals_keep_their_shapes(clients: tuple[TestClient, TestClient]) -> None:
    whole, routes = clients
    # /predict: the platform's envelope, with the route's own message.
    bad = {"image": "not base64!"}
    fast = whole.post("/predict", json=bad)
    with pytest.raises(InvalidRequest) as raised:
        routes.post("/predict", json=bad)
    assert fast.status_code == 400
    assert fast.json() == {"error": {"code": "INVALID_REQUEST", "message": raised.value.message}}
    # OIP infer: OIP's shape, as the route answers it.
    for path, status in (("/v2/models/other/infer", 404), ("/v2/models/mnist/infer", 400)):
        fast = whole.post(path, json={"inputs": [{"name": "x"}]})
        slow = routes.post(path, json={"inputs": [{"name": "x"}]})
        assert fast.status_code == slow.status_code == status
        assert fast.json() == slow.json() and set(fast.json()) == {"error"}
    # Guard still stands in front of them: no key, no answer.
    keyless = whole.post("/predict", json={"image": IMAGES[0]}, headers={"Authorization": ""})
    assert keyless.status_code == 401


def test_metrics_label_them_with_the_routes_templates(
    clients: tuple[TestClient, TestClient],
) -> None:
    whole, _ = clients
    whole.post("/predict", json={"image": IMAGES[0]})
    whole.post("/v2/models/mnist/versions/1/infer", json={"inputs": []})
    text = whole.get("/metrics").text
    assert 'route="/predict"' in text
    assert 'route="/v2/models/{name}/versions/{version}/infer"' in text


def test_tabular_json_convenience_as_the_route_does(tmp_path: Path) -> None:
    app = create_model_app(write_tabular_model(tmp_path / "tabular.lance"))
    x, _ = tabular_rows(5, seed=3)
    with TestClient(app) as whole, TestClient(AsyncExitStackMiddleware(app.router)) as routes:
        body = {"inputs": x.tolist()}
        fast, slow = whole.post("/predict", json=body), routes.post("/predict", json=body)
        assert fast.status_code == 200 and fast.content == slow.content
        assert len(fast.json()["predictions"]) == 5
