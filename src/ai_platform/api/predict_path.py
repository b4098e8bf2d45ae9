"""The platform's predict route as pure ASGI: the one hot path, answered without the router.

``POST /api/v1/inference-services/{id or name}/predict`` is forwarded to the model server
as-is. Going through FastAPI's routing, dependency solving and response classes costs several
times what the forwarding itself does, and every prediction through the platform pays it. This
middleware sits inside ``Guard`` (so the API key and the body limit still apply) and answers
that one path itself; every other request goes on to the app. The FastAPI route of the same
path stays: it documents the route in the OpenAPI spec and serves when this is not installed.
"""

from __future__ import annotations

import re
from typing import Any

from lakeapi.errors import PlatformError
from serverkit.http import send_error

PREDICT_PATH = re.compile(r"/api/v1/inference-services/([^/]+)/predict")
_JSON = [(b"content-type", b"application/json")]


class PredictFastPath:
    """Answer predict requests from ``app.state.serving`` (a ``ServingManager``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = PREDICT_PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
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


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
