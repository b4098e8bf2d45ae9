"""The platform's predict and OIP routes as pure ASGI: the hot paths, answered without the
router.

``POST /api/v1/inference-services/{id or name}/predict`` is forwarded to the model server
as-is, and so is every Open Inference Protocol v2 request under
``/api/v1/inference-services/{id or name}/v2/...`` (any method; its body, ``Content-Type`` and
``Inference-Header-Content-Length`` both ways). OIP requests that the platform itself refuses
(no such service, not running, no answer) get OIP's error shape ``{"error": "..."}``, which
tritonclient reads, instead of the platform's envelope.

Going through FastAPI's routing, dependency solving and response classes costs several times
what the forwarding itself does, and every prediction through the platform pays it. This
middleware sits inside ``Guard`` (so the API key and the body limit still apply) and answers
these paths itself; every other request goes on to the app. The FastAPI routes of the same
paths stay: predict's documents it in the OpenAPI spec, and both serve when this is not
installed. Metrics label these requests with the route templates below (the router never
sees them).
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

from ai_platform.serving.manager import OIP_HEADERS
from lakeapi.errors import PlatformError
from serverkit.http import read_body, send_error

PREFIX = "/api/v1/inference-services"
PREDICT_PATH = re.compile(rf"{PREFIX}/([^/]+)/predict")
OIP_PATH = re.compile(rf"{PREFIX}/([^/]+)(/v2(?:/.*)?)")
# For ``Guard(oip_paths=...)``: its own refusals (401, 413, 415) on these paths in OIP's shape.
OIP_PATHS = re.compile(rf"{PREFIX}/[^/]+/v2(?:/|$)")
_JSON = [(b"content-type", b"application/json")]
# What the metrics middleware reads as the route (``scope["route"].path``).
_PREDICT_ROUTE = SimpleNamespace(path=f"{PREFIX}/{{service}}/predict")
_OIP_ROUTE = SimpleNamespace(path=f"{PREFIX}/{{service}}/v2/{{path}}")
_FORWARDED = tuple(name.encode() for name in OIP_HEADERS)


class PredictFastPath:
    """Answer predict requests from ``app.state.serving`` (a ``ServingManager``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        match = None
        if scope["method"] == "POST":
            match = PREDICT_PATH.fullmatch(scope["path"])
        if match is None:
            oip = OIP_PATH.fullmatch(scope["path"])
            if oip is None:
                await self.app(scope, receive, send)
            else:
                scope["route"] = _OIP_ROUTE
                await _forward_oip(scope, receive, send, oip[1], oip[2])
            return
        scope["route"] = _PREDICT_ROUTE
        body = await read_body(receive)
        if body is None:
            return  # the client left (or Guard already answered 413)
        try:
            status, content = await scope["app"].state.serving.predict(match[1], body)
        except PlatformError as err:
            await send_error(send, err)
            return
        headers = [*_JSON, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _forward_oip(scope: Any, receive: Any, send: Any, service: str, path: str) -> None:
    body = await read_body(receive)
    if body is None:
        return
    query = scope.get("query_string", b"")
    target = f"{path}?{query.decode('latin-1')}" if query else path
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name in _FORWARDED
    ]
    try:
        status, kept, content = await scope["app"].state.serving.forward(
            service, scope["method"], target, body, headers
        )
    except PlatformError as err:
        status, kept = err.status, [("content-type", "application/json")]
        content = json.dumps({"error": err.message}).encode()
    out = [(name.encode(), value.encode("latin-1")) for name, value in kept]
    out.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": content})
