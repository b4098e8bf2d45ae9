"""The guard every server puts first: trusted hosts and JSON-only bodies (an app in process)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI, Request

from serverkit.http import Guard, install_error_handlers, trusted_hosts
from tests.data_platform.test_errors import assert_error


def guarded(**options: object) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    @app.post("/v2/models/m/infer")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(Guard, api_key=None, max_body_bytes=1024, **options)
    return app


def call(app: FastAPI, method: str, url: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, url, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_trusted_hosts_are_loopback_and_the_bound_host_but_not_a_wildcard_bind():
    assert trusted_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert trusted_hosts("10.0.0.5", ["Api.Example"]) == (
        "localhost",
        "127.0.0.1",
        "::1",
        "api.example",
        "10.0.0.5",
    )
    assert trusted_hosts("0.0.0.0") == trusted_hosts("::") == trusted_hosts("127.0.0.1")
    assert "fe80::1" in trusted_hosts("[fe80::1]")


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("127.0.0.1:8000", 200),
        ("LOCALHOST:1", 200),
        ("[::1]:8000", 200),
        ("::1", 200),
        ("evil.example", 400),
        ("evil.example:8000", 400),
        ("127.0.0.1.evil.example", 400),
        ("", 400),
    ],
)
def test_a_host_outside_the_allow_list_is_400(host, status):
    app = guarded(allowed_hosts=trusted_hosts("127.0.0.1"))
    r = call(app, "GET", "/health", headers={"host": host})
    if status == 400:
        assert "untrusted Host" in assert_error(r, 400, "INVALID_REQUEST")["message"]
    else:
        assert r.status_code == 200, r.text


def test_a_star_or_no_list_allows_any_host():
    for app in (guarded(allowed_hosts=["*"]), guarded()):
        assert call(app, "GET", "/health", headers={"host": "any.example"}).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
        "application/xml",
        "application/octet-stream",  # binary only where the routes take it
    ],
)
def test_a_body_that_is_not_json_is_415(content_type):
    r = call(guarded(), "POST", "/echo", content=b"{}", headers={"content-type": content_type})
    assert "send JSON" in assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")["message"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_bodies_pass(content_type):
    r = call(guarded(), "POST", "/echo", content=b"{}", headers={"content-type": content_type})
    assert r.status_code == 200 and r.json() == {"bytes": 2}


def test_binary_tensors_pass_where_allowed_and_a_bare_body_is_left_to_the_route():
    app = guarded(binary_suffixes=("/infer",))
    octets = {"content-type": "application/octet-stream"}
    r = call(app, "POST", "/v2/models/m/infer", content=b"\x00\x01", headers=octets)
    assert r.status_code == 200 and r.json() == {"bytes": 2}
    assert_error(
        call(app, "POST", "/echo", content=b"\0", headers=octets), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert call(app, "POST", "/echo", content=b"{}").json() == {"bytes": 2}
