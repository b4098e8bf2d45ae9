"""The optional API key, body limits, and bad bytes, on both services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.data_platform.test_errors import assert_error
from tests.support import PlatformServers

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    servers = PlatformServers(
        tmp_path_factory.mktemp("keyed"),
        DP_API_KEY=KEY,
        AIP_API_KEY=KEY,
        AIP_MAX_BODY_BYTES="4096",
    ).start()
    yield servers
    servers.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/datasets"),
        ("GET", "/api/v1/models/x"),
        ("POST", "/api/v1/ingestion-tasks"),
        ("GET", "/api/v1/training-tasks"),
        ("POST", "/api/v1/inference-services/x/predict"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
    ],
)
def test_every_endpoint_but_health_needs_the_key(keyed, method, path):
    for url in (keyed.url, keyed.dp.url):
        r = httpx.request(method, url + path, json={})
        assert_error(r, 401, "UNAUTHORIZED")
        r = httpx.request(method, url + path, headers={"Authorization": "Bearer wrong"})
        assert_error(r, 401, "UNAUTHORIZED")
        assert httpx.get(url + "/health").status_code == 200


def test_the_ui_files_load_without_the_key(keyed):
    r = httpx.get(keyed.url + "/ui/")
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert httpx.get(keyed.url + "/", follow_redirects=True).status_code == 200


def test_with_the_key_the_ai_platform_reaches_the_data_platform(keyed):
    headers = {"Authorization": f"Bearer {KEY}"}
    r = httpx.get(keyed.url + "/api/v1/datasets", headers=headers)
    assert r.status_code == 200 and r.json() == []
    r = httpx.post(
        keyed.url + "/api/v1/ingestion-tasks",
        headers=headers,
        json={
            "name": "k",
            "input": "raw/mnist",
            "script": "fixtures/exit_ok.py",
            "params": {},
            "output": "k",
        },
    )
    assert r.status_code == 201, r.text


def test_body_over_the_limit_is_413(keyed):
    headers = {"Authorization": f"Bearer {KEY}"}
    big = {"name": "x", "input": "", "script": "s.py", "params": {"blob": "x" * 10000}}
    r = httpx.post(keyed.url + "/api/v1/ingestion-tasks", headers=headers, json=big)
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "x", "params": {"blob": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    r = httpx.post(
        keyed.url + "/api/v1/ingestion-tasks",
        headers={**headers, "content-type": "application/json"},
        content=chunks(),
    )
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


def test_non_utf8_and_malformed_bodies_are_400(keyed):
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    for body in (b"\xff\xfe\x00garbage", b"{bad json", b"[1, 2", b"null", b'"string"'):
        r = httpx.post(keyed.url + "/api/v1/training-tasks", headers=headers, content=body)
        assert_error(r, 400, "INVALID_REQUEST")


def test_services_bind_loopback_by_default():
    from ai_platform.settings import AIPlatformSettings
    from data_platform.settings import DataPlatformSettings

    assert DataPlatformSettings(_env_file=None).host == "127.0.0.1"
    assert AIPlatformSettings(_env_file=None).host == "127.0.0.1"
    assert AIPlatformSettings(_env_file=None).serving_host == "127.0.0.1"


def test_unreachable_data_platform_is_502(tmp_path: Path):
    servers = PlatformServers(tmp_path)
    servers.aip.start()  # the Data Platform is never started
    try:
        r = httpx.get(servers.url + "/api/v1/datasets")
        assert_error(r, 502, "UPSTREAM_UNAVAILABLE")
    finally:
        servers.aip.stop()


def test_unexpected_exception_in_the_ai_platform_is_500_without_traceback(tmp_path: Path):
    from fastapi.testclient import TestClient

    from ai_platform.app import create_app
    from ai_platform.settings import AIPlatformSettings

    app = create_app(AIPlatformSettings(state_dir=tmp_path / "state"))

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)  # a route that fails the way a bug would
    with TestClient(app, raise_server_exceptions=False) as client:
        error = assert_error(client.get("/boom"), 500, "INTERNAL_ERROR")
    assert "secret" not in error["message"] and "Traceback" not in error["message"]


@pytest.fixture(scope="module")
def dp_keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformServers]:
    """Only the Data Platform's key is given, to both services; a model in the lake."""
    from tests.serving.small_model import train_mlp

    root = tmp_path_factory.mktemp("dp_keyed")
    train_mlp(root / "lake")
    env = {"DP_API_KEY": KEY}
    servers = PlatformServers(root, **env)
    servers.aip.env.update(env)
    yield servers.start()
    servers.stop()


def test_only_the_data_platforms_key_protects_the_ai_platform_too(dp_keyed):
    assert_error(httpx.get(dp_keyed.url + "/api/v1/datasets"), 401, "UNAUTHORIZED")
    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(dp_keyed.url + "/api/v1/datasets", headers=headers).status_code == 200


def test_model_servers_need_the_key_which_never_reaches_their_environment(dp_keyed):
    from tests.serving.small_model import MODEL, raw_digits

    headers = {"Authorization": f"Bearer {KEY}"}
    services = dp_keyed.url + "/api/v1/inference-services"
    r = httpx.post(services, headers=headers, json={"name": "locked", "model": MODEL}, timeout=90)
    assert r.status_code == 201, r.text
    service = r.json()
    endpoint, pid = service["endpoint"], service["pid"]
    try:
        for method, path in [
            ("POST", "/predict"),
            ("GET", "/v1/model"),
            ("GET", "/v1/stats"),
            ("GET", "/v2/models/locked"),
            ("POST", "/v2/models/locked/infer"),
            ("GET", "/v2"),
            ("GET", "/docs"),
            ("GET", "/openapi.json"),
            ("GET", "/metrics"),
        ]:
            r = httpx.request(method, endpoint + path, json={})
            if path.startswith("/v2"):  # the Open Inference Protocol's own error shape
                assert r.status_code == 401 and r.json() == {"error": "missing or wrong API key"}
            else:
                assert_error(r, 401, "UNAUTHORIZED")
        for path in ("/health", "/v2/health/live", "/v2/health/ready"):
            assert httpx.get(endpoint + path).status_code == 200, path
        assert httpx.get(endpoint + "/v1/model", headers=headers).status_code == 200
        # The platform sends the key on: predict through it works, and the probes keep the
        # service running.
        image = raw_digits(1)[0][0]
        r = httpx.post(f"{services}/locked/predict", headers=headers, json={"image": image})
        assert r.status_code == 200 and "prediction" in r.json(), r.text
        r = httpx.get(f"{services}/locked/v2/models/locked", headers=headers)
        assert r.status_code == 200, r.text
        r = httpx.get(f"{services}/locked/v2/models/locked")  # the platform's OIP route too
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong API key"}
        assert httpx.get(f"{services}/locked", headers=headers).json()["status"] == "running"

        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = fh.read()
        assert KEY.encode() not in environ and b"API_KEY" not in environ
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        assert KEY.encode() not in b" ".join(argv)
        key_file = argv[argv.index(b"--api-key-file") + 1].decode()
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(key_file)).st_mode & 0o777 == 0o700
    finally:
        assert httpx.delete(f"{services}/locked", headers=headers).status_code == 204


def test_an_untrusted_host_is_400_and_non_json_bodies_are_415(dp_keyed):
    headers = {"Authorization": f"Bearer {KEY}"}
    for host in ("evil.example", "rebound.attacker.test:8000", "127.0.0.2"):
        r = httpx.get(dp_keyed.url + "/api/v1/datasets", headers={**headers, "host": host})
        error = assert_error(r, 400, "INVALID_REQUEST")
        assert "Host" in error["message"]
    # Before the key: a rebound page learns nothing, not even that a key is needed.
    assert_error(
        httpx.get(dp_keyed.url + "/health", headers={"host": "evil.example"}),
        400,
        "INVALID_REQUEST",
    )
    for host in ("localhost", f"localhost:{dp_keyed.aip.port}", "[::1]:1"):
        r = httpx.get(dp_keyed.url + "/api/v1/datasets", headers={**headers, "host": host})
        assert r.status_code == 200, (host, r.text)

    tasks = dp_keyed.url + "/api/v1/ingestion-tasks"
    job = '{"name": "t", "input": "", "script": "fixtures/exit_ok.py", "output": "t"}'
    for content_type in (
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        r = httpx.post(tasks, headers={**headers, "content-type": content_type}, content=job)
        error = assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert "JSON" in error["message"]
        r = httpx.post(
            dp_keyed.url + "/api/v1/inference-services/x/predict",
            headers={**headers, "content-type": content_type},
            content="{}",
        )
        assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = httpx.post(tasks, headers={**headers, "content-type": "application/json"}, content=job)
    assert r.status_code == 201, r.text
