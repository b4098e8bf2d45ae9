"""What one request may ask of a model server: its images and pixels (the decode budget),
its rows, and JSON nested beyond what a parser reads: each a 4xx, never a 500.

Also: the batched raw-pixel decoder gives exactly what decoding one image at a time gives.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ai_platform.serving.model_server import create_model_app
from ai_platform.serving.protocol.dataplane import RequestLimits
from lakekit.images import (
    MAX_PIXELS,
    MAX_REQUEST_PIXELS,
    RAW_BYTES,
    decode_image,
    decode_raw_batch,
)
from tests.lakekit.mnist_fixture import mnist_arrays

DIGITS, _ = mnist_arrays("test", 64)
RAW = [base64.b64encode(d.tobytes()).decode() for d in DIGITS]
DEEP = 100_000


def flat_png(side: int) -> str:
    """A one-colour PNG: a few hundred bytes that declare ``side * side`` pixels."""
    buf = io.BytesIO()
    Image.new("L", (side, side), 0).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def client(model_path: str) -> Iterator[TestClient]:
    limits = RequestLimits(max_rows=8, max_pixels=2 * 1000 * 1000)
    app = create_model_app(model_path, limits=limits)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def default_client(model_path: str) -> Iterator[TestClient]:
    with TestClient(create_model_app(model_path), raise_server_exceptions=False) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str, text: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert text in error["message"], error


def test_documented_defaults() -> None:
    limits = RequestLimits()
    assert limits.max_rows == 1024
    assert limits.max_pixels == MAX_REQUEST_PIXELS == 32 * 1024 * 1024
    # Two images at the per-image limit fit; a request cannot make a third one's worth.
    assert 2 * MAX_PIXELS <= MAX_REQUEST_PIXELS < 3 * MAX_PIXELS


def test_pixels_over_the_budget_are_413_before_decoding(client: TestClient) -> None:
    # Each image passes the per-image check (1000x1000 < 4096x4096); two fill the budget.
    small = flat_png(1000)
    assert len(base64.b64decode(small)) < 10_000
    ok = client.post("/predict", json={"images": [small, small]})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["predictions"]) == 2
    r = client.post("/predict", json={"images": [small, small, small]})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE", "over 2000000 pixels")
    assert "--max-request-pixels" in r.json()["error"]["message"]


def test_raw_pixels_count_toward_the_budget(model_path: str) -> None:
    limits = RequestLimits(max_rows=64, max_pixels=10 * RAW_BYTES)
    with TestClient(create_model_app(model_path, limits=limits)) as c:
        assert c.post("/predict", json={"images": RAW[:10]}).status_code == 200
        assert_error(
            c.post("/predict", json={"images": RAW[:11]}), 413, "PAYLOAD_TOO_LARGE", "pixels"
        )
        # Decoded one by one (one image is not canonical) the budget holds the same.
        mixed = [*RAW[:11], RAW[11][:-3] + "B=="]
        assert_error(c.post("/predict", json={"images": mixed}), 413, "PAYLOAD_TOO_LARGE", "")


def test_images_over_the_count_are_400(client: TestClient) -> None:
    assert client.post("/predict", json={"images": RAW[:8]}).status_code == 200
    r = client.post("/predict", json={"images": RAW[:9]})
    assert_error(r, 400, "INVALID_REQUEST", '"images" holds 9 images; at most 8')


def test_rows_over_the_count_are_400_on_tensor_routes(client: TestClient) -> None:
    rows = (DIGITS[:9].astype(np.float32) / 255).reshape(9, 1, 28, 28)
    r = client.post("/predict", json={"inputs": rows.tolist()})
    assert_error(r, 400, "INVALID_REQUEST", "the inputs hold 9 rows; at most 8")
    tensor = {"name": "image", "shape": list(rows.shape), "datatype": "FP32"}
    body = {"inputs": [tensor | {"data": rows.ravel().tolist()}]}
    oip = client.post("/v2/models/mnist_mlp_v1/infer", json=body)
    assert oip.status_code == 400, oip.text
    assert oip.json() == {"error": "the inputs hold 9 rows; at most 8 a request"}
    body["inputs"][0] |= {"shape": [8, 1, 28, 28], "data": rows[:8].ravel().tolist()}
    assert client.post("/v2/models/mnist_mlp_v1/infer", json=body).status_code == 200


def test_json_nested_100k_deep_is_400(default_client: TestClient) -> None:
    deep = ("[" * DEEP + "]" * DEEP).encode()
    for body in (deep, b'{"inputs": ' + deep + b"}", b'{"images": ' + deep + b"}"):
        r = default_client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
        assert_error(r, 400, "INVALID_REQUEST", "nested too deeply")
    infer = b'{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": '
    r = default_client.post(
        "/v2/models/mnist_mlp_v1/infer",
        content=infer + deep + b"}]}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and "inference request" in r.json()["error"]


def test_inputs_nested_deeper_than_an_array_are_400(default_client: TestClient) -> None:
    # Within what the JSON parser reads, beyond the dimensions numpy gives an array.
    nested = json.loads("[" * 200 + "0.5" + "]" * 200)
    r = default_client.post("/predict", json={"inputs": nested})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_REQUEST"


def test_batched_raw_decode_equals_one_at_a_time() -> None:
    batch = decode_raw_batch(RAW)
    assert batch is not None and batch.dtype == np.uint8 and batch.shape == (64, 28, 28)
    np.testing.assert_array_equal(batch, np.stack([decode_image(b) for b in RAW]))
    np.testing.assert_array_equal(batch, DIGITS)
    rng = np.random.default_rng(7)
    noise = [base64.b64encode(rng.bytes(RAW_BYTES)).decode() for _ in range(32)]
    noise = [b for b in noise if not base64.b64decode(b).startswith(b"\xff\xd8\xff")]
    np.testing.assert_array_equal(
        decode_raw_batch(noise), np.stack([decode_image(b) for b in noise])
    )


@pytest.mark.parametrize(
    "odd",
    [
        RAW[0][:-3] + "B==",  # non-zero pad bits: not canonical
        RAW[0][:-4] + "A===",  # excess padding
        "é" * len(RAW[0]),  # not ASCII
        "*" + RAW[0][1:],  # not the base64 alphabet
        RAW[0][:-2],  # not raw-pixel length
        base64.b64encode(b"\xff\xd8\xff" + bytes(RAW_BYTES - 3)).decode(),  # starts as a JPEG
    ],
)
def test_batched_raw_decode_leaves_the_odd_ones_to_decode_image(odd: str) -> None:
    assert decode_raw_batch([RAW[0], odd]) is None
