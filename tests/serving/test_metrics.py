"""Prometheus ``/metrics``: serverkit's middleware on a small app, and the model server's own
metrics, scraped and parsed with prometheus-client's parser."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ai_platform.serving.model_server import create_model_app
from serverkit.http import Guard, install_error_handlers
from serverkit.metrics import UNMATCHED, install_metrics
from tests.lakekit.mnist_fixture import mnist_arrays

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


JSON = {"content-type": "application/json"}


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def small_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(Guard, api_key=None, max_body_bytes=100)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return body

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    install_metrics(app, namespace="demo")
    return app


def test_requests_are_counted_per_route_template_and_status() -> None:
    with TestClient(small_app(), raise_server_exceptions=False) as c:
        for i in (1, 2, 3):
            assert c.get(f"/items/{i}").status_code == 200
        assert c.get("/items/x").status_code == 400
        assert c.get("/nowhere/42").status_code == 404
        assert c.post("/echo", content=b"x" * 500, headers=JSON).status_code == 413
        assert c.get("/boom").status_code == 500
        samples = scrape(c)
    route = "/items/{item_id}"
    assert value(samples, "demo_http_requests_total", method="GET", route=route, status="200") == 3
    assert value(samples, "demo_http_requests_total", method="GET", route=route, status="400") == 1
    assert (
        value(samples, "demo_http_requests_total", method="GET", route=UNMATCHED, status="404") == 1
    )
    # Refused by the guard before routing, still counted (the metrics are outermost).
    assert (
        value(samples, "demo_http_requests_total", method="POST", route=UNMATCHED, status="413")
        == 1
    )
    assert (
        value(samples, "demo_http_requests_total", method="GET", route="/boom", status="500") == 1
    )
    count = value(
        samples, "demo_http_request_duration_seconds_count", method="GET", route=route,
        status="200",
    )  # fmt: skip
    assert count == 3
    total = value(
        samples, "demo_http_request_duration_seconds_sum", method="GET", route=route, status="200"
    )
    assert 0 < total < 10
    # No raw path becomes a label: cardinality stays bounded.
    assert not any("/items/1" in dict(labels).get("route", "") for _, labels in samples)


def test_two_apps_in_one_process_have_their_own_registries() -> None:
    with TestClient(small_app()) as a, TestClient(small_app()) as b:
        a.get("/items/1")
        assert value(
            scrape(b), "demo_http_requests_total", method="GET", route="/items/{item_id}",
            status="200",
        ) == 0  # fmt: skip


@pytest.fixture(scope="module")
def server(model_path: str) -> Iterator[TestClient]:
    with TestClient(create_model_app(model_path), raise_server_exceptions=False) as c:
        yield c


def test_model_server_metrics(server: TestClient) -> None:
    digits, _ = mnist_arrays("test", 5)
    raw = [base64.b64encode(d.tobytes()).decode() for d in digits]
    assert server.post("/predict", json={"images": raw}).status_code == 200
    assert server.post("/predict", json={"image": raw[0]}).status_code == 200
    assert server.post("/predict", json={}).status_code == 400
    infer = {"inputs": [{"name": "image", "shape": [2, 1, 28, 28], "datatype": "FP32",
                         "data": [0.0] * (2 * 784)}]}  # fmt: skip
    assert server.post("/v2/models/mnist_mlp_v1/infer", json=infer).status_code == 200
    stats = server.get("/v1/stats").json()
    samples = scrape(server)
    requests = "model_server_http_requests_total"
    assert value(samples, requests, method="POST", route="/predict", status="200") == 2
    assert value(samples, requests, method="POST", route="/predict", status="400") == 1
    oip = "/v2/models/{name}/infer"
    assert value(samples, requests, method="POST", route=oip, status="200") == 1
    # One histogram sample per forward pass, its rows summed: what /v1/stats counts.
    assert value(samples, "model_server_batch_rows_count") == stats["forward_passes"]
    assert value(samples, "model_server_batch_rows_sum") == stats["images"] == 5 + 1 + 2
    assert value(samples, "model_server_queue_rows") == 0
    assert value(samples, "model_server_model_load_seconds", model="mnist_mlp_v1") > 0
