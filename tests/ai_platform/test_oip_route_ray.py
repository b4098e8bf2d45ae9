"""Level 2: the same OIP route through the platform when the service is a Ray Serve app (its
endpoint has a path, ``/{service_id}``, on its replica's own port: Serve's direct ingress in
the Ray the AI Platform starts); with two replicas, the route spreads requests over both."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.lakekit.mnist_fixture import mnist_arrays
from tests.serving.small_model import MODEL, train_mlp
from tests.serving.test_oip import normalised
from tests.support import PlatformServers, wait_until

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow
SERVICES = "/api/v1/inference-services"


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    """The AI Platform with runtime=ray and 2 replicas a service, on a private Ray it starts
    itself."""
    root = tmp_path_factory.mktemp("oip-ray")
    train_mlp(root / "lake")
    servers = PlatformServers(root, AIP_RUNTIME="ray", AIP_RAY_REPLICAS="2")
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


def images_seen(endpoint: str) -> int:
    """How many images the replica at ``endpoint`` has run (its own model server's count)."""
    return int(httpx.get(f"{endpoint}/v1/stats", timeout=30).json()["images"])


def listener_pid(port: int) -> int:
    """The process listening on ``port`` of this machine."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    (pid,) = set(re.findall(r"pid=(\d+)", out.stdout))
    return int(pid)


def test_the_route_spreads_over_the_replicas_and_skips_one_gone(on_ray: PlatformServers):
    digits, _ = mnist_arrays("test", 1)
    body = {"image": base64.b64encode(digits[0].tobytes()).decode()}
    with httpx.Client(base_url=on_ray.url, timeout=180) as api:
        created = api.post(SERVICES, json={"name": "ray-pair", "model": MODEL})
        assert created.status_code == 201, created.text
        service = created.json()
        endpoint, path = service["endpoint"], f"{SERVICES}/ray-pair/predict"
        assert endpoint.startswith(f"http://127.0.0.1:{service['port']}/")
        logs = f"{SERVICES}/ray-pair/logs"

        def loaded() -> set[int] | None:  # both replicas' pids, once both serve
            text = api.get(logs).text
            found = {int(pid) for pid in re.findall(r"replica \(pid (\d+)\)", text)}
            return found if text.count("serving ") == 2 else None

        pids = wait_until(loaded, timeout=120)
        assert len(pids) == 2

        def one_of_two() -> bool:  # every second request reaches the endpoint's replica
            before = images_seen(endpoint)
            assert all(api.post(path, json=body).status_code == 200 for _ in range(2))
            return images_seen(endpoint) == before + 1

        wait_until(one_of_two, timeout=30, interval=0.5)  # both replicas are in the rotation
        before = images_seen(endpoint)
        assert all(api.post(path, json=body).status_code == 200 for _ in range(20))
        assert images_seen(endpoint) == before + 10

        # The endpoint's replica killed: within a probe round or two the endpoint is the
        # other one's (Serve itself drops the dead one only after about 10 s here), and
        # each request meant for the dead one goes to the one left, at once.
        killed = listener_pid(service["port"])
        assert killed in pids
        os.kill(killed, signal.SIGKILL)

        def moved() -> str | None:
            now = api.get(f"{SERVICES}/ray-pair").json()
            answered = api.post(path, json=body).status_code == 200
            return now["endpoint"] if answered and now["endpoint"] != endpoint else None

        left = wait_until(moved, timeout=5, interval=0.1)
        before = images_seen(left)
        answers = [api.post(path, json=body) for _ in range(10)]
        assert [r.status_code for r in answers] == [200] * 10, answers[-1].text
        assert images_seen(left) == before + 10
        assert api.delete(f"{SERVICES}/ray-pair").status_code == 204
