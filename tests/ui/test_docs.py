"""The API docs pages of both services render with the network blocked (no CDN)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from serverkit.docs import ASSETS_PREFIX, install_offline_docs
from tests.support import PlatformServers
from tests.ui.browser import VIEWPORT, block_network


@pytest.fixture
def offline(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page that can reach the loopback only, and the URLs it tried beyond it."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(20_000)
    tried = block_network(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page, tried
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(params=["AI Platform", "Data Platform"])
def service(request: pytest.FixtureRequest, platform: PlatformServers) -> dict[str, Any]:
    """One of the two services: its title, URL and the OpenAPI schema it serves."""
    url = {"AI Platform": platform.aip.url, "Data Platform": platform.dp.url}[request.param]
    spec = httpx.get(f"{url}/openapi.json", timeout=30).json()
    return {"title": request.param, "url": url, "spec": spec}


@pytest.mark.slow
def test_swagger_ui_renders_every_operation_offline(
    offline: tuple[Any, list[str]], service: dict[str, Any]
) -> None:
    page, tried = offline
    paths = service["spec"]["paths"]
    operations = sum(1 for item in paths.values() for method in item if method in HTTP_METHODS)
    page.goto(f"{service['url']}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(service["title"])
    expect(page.locator(".opblock")).to_have_count(operations)
    some_path = next(iter(paths))
    expect(page.locator(f'.opblock-summary-path[data-path="{some_path}"]').first).to_be_visible()
    assert tried == [], f"the page reached beyond the loopback: {tried}"


@pytest.mark.slow
def test_redoc_renders_offline(offline: tuple[Any, list[str]], service: dict[str, Any]) -> None:
    page, tried = offline
    spec = service["spec"]
    page.goto(f"{service['url']}/redoc")
    title = f"{service['title']} ({spec['info']['version']})"
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    first = next(op for item in spec["paths"].values() for op in item.values())
    expect(page.get_by_role("heading", name=first["summary"]).first).to_be_visible()
    # ReDoc's footer asks a CDN for its logo: the page's CSP refuses it before any request.
    assert tried == [], f"the page reached beyond the loopback: {tried}"


# -- without a browser: what install_offline_docs serves --------------------------------------


def docs_app() -> FastAPI:
    app = FastAPI(title="Docs test", docs_url=None, redoc_url=None)
    install_offline_docs(app)
    return app


def test_the_pages_load_only_assets_the_app_serves_itself() -> None:
    client = TestClient(docs_app())
    for page, assets in [
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
        ("/redoc", ["redoc.standalone.js"]),
    ]:
        html = client.get(page)
        assert html.status_code == 200
        assert "https://" not in html.text and "http://" not in html.text, page
        assert "default-src 'self'" in html.headers["content-security-policy"]
        for asset in assets:
            assert f'"{ASSETS_PREFIX}/{asset}"' in html.text, asset
            served = client.get(f"{ASSETS_PREFIX}/{asset}")
            assert served.status_code == 200, asset
            assert len(served.content) > 100_000, asset  # the real bundle, not a stub
    assert '"validatorUrl": null' in client.get("/docs").text
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_an_app_with_fastapis_cdn_pages_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="docs_url=None, redoc_url=None"):
        install_offline_docs(FastAPI())
