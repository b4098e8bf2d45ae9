"""A model server's two hot routes as pure ASGI: answered without the router.

``POST /predict`` and ``POST /v2/models/{name}[/versions/{version}]/infer`` carry every
prediction. FastAPI's routing (matching every route in turn, dependency solving, the request
and response classes) costs a model server more CPU than decoding the request does; at one
client at a time every request pays it in full. This middleware sits inside ``Guard`` (the
API key, the trusted hosts, the body limit and the content types still apply) and answers
those two routes itself, through the same functions as their FastAPI routes
(``v1_endpoints.predict_answer``, ``DataPlane.infer``), with the same bytes: the routes stay,
documented in the OpenAPI spec, and serve when this is not installed. Metrics label these
requests with the routes' templates (the router never sees them).
"""

from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace
from typing import Any

from ai_platform.serving.protocol.dataplane import DataPlane
from ai_platform.serving.protocol.infer_type import HEADER_LENGTH
from ai_platform.serving.protocol.rest.v1_endpoints import predict_answer
from lakeapi.errors import PlatformError
from serverkit.http import app_path, read_body, send_error

log = logging.getLogger(__name__)

INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_PREDICT_ROUTE = SimpleNamespace(path="/predict")
_INFER_ROUTE = SimpleNamespace(path="/v2/models/{name}/infer")
_VERSION_INFER_ROUTE = SimpleNamespace(path="/v2/models/{name}/versions/{version}/infer")
_HEADER_LENGTH = HEADER_LENGTH.lower().encode()


class HotRoutes:
    """Answer ``/predict`` and OIP infer from ``plane``; every other request goes on."""

    def __init__(self, app: Any, plane: DataPlane) -> None:
        self.app = app
        self.plane = plane

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        if path == "/predict":
            scope["route"] = _PREDICT_ROUTE
            await self._predict(receive, send)
            return
        infer = INFER_PATH.fullmatch(path)
        if infer is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _VERSION_INFER_ROUTE if infer[2] is not None else _INFER_ROUTE
        await self._infer(scope, receive, send, infer[1], infer[2])

    async def _predict(self, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        if body is None:
            return  # the client left (or Guard already answered 413)
        try:
            answer = await predict_answer(self.plane, body)
        except PlatformError as err:
            await send_error(send, err)
            return
        # As Starlette's JSONResponse renders it, byte for byte.
        content = json.dumps(
            answer, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode()
        await _answer(send, 200, b"application/json", content)

    async def _infer(
        self, scope: Any, receive: Any, send: Any, name: str, version: str | None
    ) -> None:
        body = await read_body(receive)
        if body is None:
            return
        header_length = None
        for key, value in scope["headers"]:
            if key == _HEADER_LENGTH:
                header_length = value.decode("latin-1")
        try:
            content, json_length = await self.plane.infer(name, version, body, header_length)
        except PlatformError as err:
            await send_error(send, err, oip=True)
            return
        except Exception as exc:  # OIP's shape even for our own bugs, as OIPRoute answers
            log.exception("unexpected error on %s", scope["path"])
            error = {"error": f"internal error ({type(exc).__name__})"}
            await _answer(send, 500, b"application/json", json.dumps(error).encode())
            return
        if json_length is None:
            await _answer(send, 200, b"application/json", content)
        else:
            extra = [(b"inference-header-content-length", str(json_length).encode())]
            await _answer(send, 200, b"application/octet-stream", content, extra)


async def _answer(
    send: Any,
    status: int,
    media: bytes,
    content: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-length", str(len(content)).encode()), (b"content-type", media)]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
