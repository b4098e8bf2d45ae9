"""The optional API key, body limits, and bad bytes, on both services."""

from __future__ import annotations

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
