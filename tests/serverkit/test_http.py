"""The guard every server puts first: trusted hosts and JSON-only bodies (an app in process)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from serverkit.http import Guard, install_error_handlers, trusted_hosts
from tests.data_platform.test_errors import assert_error


def guarded(api_key: str | None = None, max_body_bytes: int = 1024, **options: object) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    @app.post("/v2/models/m/infer")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(Guard, api_key=api_key, max_body_bytes=max_body_bytes, **options)
    return app


def call(app: FastAPI, method: str, url: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, url, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A body sent chunked, with no Content-Length."""
    for part in parts:
        yield part


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


def test_binary_tensors_pass_where_allowed():
    app = guarded(binary_suffixes=("/infer",))
    octets = {"content-type": "application/octet-stream"}
    r = call(app, "POST", "/v2/models/m/infer", content=b"\x00\x01", headers=octets)
    assert r.status_code == 200 and r.json() == {"bytes": 2}
    assert_error(
        call(app, "POST", "/echo", content=b"\0", headers=octets), 415, "UNSUPPORTED_MEDIA_TYPE"
    )


def test_a_body_with_no_content_type_is_415_except_on_binary_paths():
    # What a cross-site fetch of an untyped Blob sends: no preflight, no Content-Type.
    app = guarded(binary_suffixes=("/infer",))
    r = call(app, "POST", "/echo", content=b"{}")
    assert "no content type" in assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")["message"]
    chunked = call(app, "POST", "/echo", content=chunks(b"{", b"}"))  # no Content-Length
    assert_error(chunked, 415, "UNSUPPORTED_MEDIA_TYPE")
    # tritonclient sends its requests untyped; the OIP routes read their own framing.
    assert call(app, "POST", "/v2/models/m/infer", content=b"{}").json() == {"bytes": 2}
    # No body at all (a POST that only acts, like a cancel) needs no type.
    assert call(app, "POST", "/echo").json() == {"bytes": 0}
    assert call(app, "POST", "/echo", content=b"").json() == {"bytes": 0}


def test_oip_paths_answer_the_guards_refusals_in_oips_shape():
    oip = re.compile(r"/v2(?:/|$)")
    app = guarded("k", 8, allowed_hosts=("127.0.0.1",), oip_paths=oip)
    key = {"authorization": "Bearer k", "content-type": "application/json"}
    infer = "/v2/models/m/infer"
    refused = {
        401: call(app, "POST", infer, content=b"{}"),
        413: call(app, "POST", infer, content=b"x" * 9, headers=key),
        415: call(app, "POST", infer, content=b"{}", headers={**key, "content-type": "text/plain"}),
    }
    for status, r in refused.items():
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    # Counted as it arrives (no Content-Length): the same shape.
    streamed = call(app, "POST", infer, content=chunks(b"x" * 5, b"x" * 5), headers=key)
    assert streamed.status_code == 413 and isinstance(streamed.json()["error"], str)
    # Elsewhere, the envelope.
    assert_error(call(app, "POST", "/echo", content=b"{}"), 401, "UNAUTHORIZED")
