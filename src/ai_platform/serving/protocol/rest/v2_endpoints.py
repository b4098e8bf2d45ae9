"""The Open Inference Protocol v2 over HTTP: a thin translation to the data plane.

Paths are the protocol's own (``/v2/...``), so a gateway can forward them as they are. Errors
on these routes take the protocol's shape ``{"error": "..."}`` (tritonclient and KServe's
clients read that), not the platform's envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from ai_platform.serving.protocol.dataplane import DataPlane
from ai_platform.serving.protocol.infer_type import HEADER_LENGTH
from ai_platform.serving.protocol.v2_datamodels import ModelMetadata, ModelReady, ServerMetadata
from lakeapi.errors import NotFound, PlatformError

log = logging.getLogger(__name__)


class OIPRoute(APIRoute):
    """Answers the routes' failures in OIP's error shape, in one place."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except PlatformError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except Exception as exc:
                log.exception("unexpected error on %s", request.url.path)
                return JSONResponse(
                    {"error": f"internal error ({type(exc).__name__})"}, status_code=500
                )

        return route


def _path_params(*names: str) -> dict[str, Any]:
    """OpenAPI ``parameters`` for path parameters a route reads itself (all strings)."""
    return {
        "parameters": [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
        ]
    }


def v2_router(plane: DataPlane) -> APIRouter:
    """The OIP v2 routes over ``plane``."""
    router = APIRouter(prefix="/v2", route_class=OIPRoute, tags=["open inference protocol"])

    # The hot route first: routes are matched in order, and every other one is a GET. Its
    # path parameters are read from the scope rather than declared: FastAPI would validate
    # them through pydantic on every request (more than the rest of the route costs); they
    # are still documented.
    @router.post("/models/{name}/infer", openapi_extra=_path_params("name"))
    @router.post(
        "/models/{name}/versions/{version}/infer", openapi_extra=_path_params("name", "version")
    )
    async def infer(request: Request) -> Response:
        """Tensors in, tensors out: JSON, or JSON plus the binary tensor data extension."""
        params = request.path_params
        body, header_length = await plane.infer(
            params["name"],
            params.get("version"),
            await request.body(),
            request.headers.get(HEADER_LENGTH),
        )
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(
            body,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    @router.get("")
    async def server_metadata() -> ServerMetadata:
        """Server name, version and protocol extensions."""
        return plane.server_metadata()

    @router.get("/health/live")
    async def live() -> dict[str, bool]:
        """The server is up."""
        return {"live": plane.live()}

    @router.get("/health/ready")
    async def ready() -> dict[str, bool]:
        """The server can infer (its model is loaded)."""
        return {"ready": plane.ready()}

    @router.get("/models/{name}")
    @router.get("/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> ModelMetadata:
        """Name, versions, platform, and the inputs and outputs of the model's signature."""
        return plane.model_metadata(name, version)

    @router.get("/models/{name}/ready")
    @router.get("/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> ModelReady:
        """The model is loaded and can infer."""
        return plane.model_ready(name, version)

    # Last, so it only takes what no route above did: unknown /v2 paths in OIP's shape too.
    @router.api_route(
        "/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False
    )
    async def unknown(request: Request, rest: str) -> Response:
        raise NotFound(f"no route {request.method} /v2/{rest}")

    return router
