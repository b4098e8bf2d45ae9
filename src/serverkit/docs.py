"""The API docs pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``) with no network.

FastAPI's own pages load their JavaScript and CSS from a CDN, so on a machine without internet
they stay blank. Here the same pages load the assets that the pinned ``fastapi-offline``
package ships (Swagger UI's bundle and CSS, ReDoc's standalone bundle), served by the app
itself under ``/docs/assets/``; nothing else of that package is used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
ASSETS_PREFIX = "/docs/assets"
# Swagger UI sends the spec's URL to validator.swagger.io for its badge; off, as it is a
# request to the internet (failed, offline) that tells nothing here.
SWAGGER_PARAMETERS = {"validatorUrl": None}
# The pages may load nothing from elsewhere: ReDoc's footer asks a CDN for its logo (and hides
# it when that fails); the browser now refuses that request instead of waiting on it. Inline
# script and style: FastAPI's pages start the bundles from an inline script; ReDoc's search
# runs in a worker made from a blob.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    ]
)


def install_offline_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add Swagger UI at ``docs_url`` and ReDoc at ``redoc_url``, their assets served locally.

    Raises:
        ValueError: the app still has FastAPI's CDN pages: build it with
            ``FastAPI(docs_url=None, redoc_url=None)``, or these routes would never be reached.
    """
    if app.docs_url or app.redoc_url:
        raise ValueError(
            "create the app with FastAPI(docs_url=None, redoc_url=None): its own docs pages "
            "load from a CDN and would shadow the offline ones"
        )
    if not app.openapi_url:
        raise ValueError("the app has no OpenAPI schema (openapi_url=None) to document")
    openapi_url = app.openapi_url
    oauth2_url = app.swagger_ui_oauth2_redirect_url
    app.mount(ASSETS_PREFIX, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def swagger_ui(root: str) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_url}" if oauth2_url else None,
            swagger_js_url=f"{root}{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PREFIX}/favicon.png",
            swagger_ui_parameters={**SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    def redoc(root: str) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route(docs_url, _page(swagger_ui), include_in_schema=False)
    app.add_api_route(redoc_url, _page(redoc), include_in_schema=False)
    if oauth2_url:

        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_api_route(oauth2_url, swagger_ui_redirect, include_in_schema=False)


def _page(build: Callable[[str], HTMLResponse]) -> Callable[[Request], Awaitable[HTMLResponse]]:
    """A docs page's route: built for the app's mount point, confined to its own origin."""

    async def page(request: Request) -> HTMLResponse:
        # root_path: behind a proxy that mounts the app under a prefix, links must carry it.
        response = build(request.scope.get("root_path", ""))
        response.headers["Content-Security-Policy"] = CSP
        return response

    return page
