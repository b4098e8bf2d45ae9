"""Level 2: the same OIP route through the platform when the service is a Ray Serve app (its
endpoint has a path, ``/{service_id}``, on Serve's shared port)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.lakekit.mnist_fixture import mnist_arrays
from tests.serving.small_model import MODEL, train_mlp
from tests.serving.test_oip import normalised
from tests.support import PlatformServers

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow
SERVICES = "/api/v1/inference-services"


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    """The AI Platform with runtime=ray, on a private Ray it starts itself."""
    root = tmp_path_factory.mktemp("oip-ray")
    train_mlp(root / "lake")
    servers = PlatformServers(root, AIP_RUNTIME="ray")
    servers.dp.start()
    servers.aip.start(180.0)
    yield servers
    servers.stop()


def test_oip_through_the_route_on_ray_equals_predict(on_ray: PlatformServers) -> None:
    with httpx.Client(base_url=on_ray.url, timeout=180) as api:
        created = api.post(SERVICES, json={"name": "ray-digits", "model": MODEL})
        assert created.status_code == 201, created.text
        service = created.json()
        assert service["endpoint"].endswith(f"/{service['id']}")
        digits, _ = mnist_arrays("test", 8)
        spec = api.get(f"/api/v1/models/{MODEL}").json()["input_spec"]
        x = normalised(digits, spec)
        base = on_ray.url.removeprefix("http://")
        with triton.InferenceServerClient(url=f"{base}{SERVICES}/ray-digits") as client:
            assert client.is_server_live() and client.is_model_ready("ray-digits")
            assert client.get_model_metadata("ray-digits")["name"] == "ray-digits"
            tensor = triton.InferInput("image", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            logits = client.infer("ray-digits", [tensor]).as_numpy("logits")
        raw = [base64.b64encode(d.tobytes()).decode() for d in digits]
        r = api.post(f"{SERVICES}/ray-digits/predict", json={"images": raw})
        assert r.status_code == 200, r.text
        assert [int(i) for i in np.argmax(logits, axis=1)] == [
            p["prediction"] for p in r.json()["predictions"]
        ]
        assert api.delete(f"{SERVICES}/ray-digits").status_code == 204
