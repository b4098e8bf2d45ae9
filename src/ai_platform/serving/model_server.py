"""The model server: one process serving one model from the lake over HTTP.

``python -m ai_platform.serving.model_server --model-path P --host 127.0.0.1 --port N``

Routes: ``GET /health``, ``GET /v1/model`` (the record's metadata) and ``POST /predict`` with
``{"image": "<base64>"}`` (one result) or ``{"images": [...]}`` (``{"predictions": [...]}``).
Every error is ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_platform.serving.predictor import Predictor, decode_image
from lakekit.errors import InvalidRequest, PayloadTooLarge, PlatformError
from lakekit.http import error_response, install_error_handlers
from lakekit.procs import PARENT_ENV

log = logging.getLogger(__name__)

MAX_BATCH = 1024
# The whole request body; far above a full batch of raw images (1024 * ~1.1 KB of base64).
MAX_BODY_BYTES = 64 * 1024 * 1024


class PredictRequest(BaseModel):
    """Exactly one of ``image`` and ``images``, each base64 (raw 28x28 bytes, PNG or JPEG)."""

    image: str | None = None
    images: list[str] | None = None


class BodyLimit:
    """Refuse bodies over ``limit`` bytes (413) before they are read into memory.

    Pure ASGI, not BaseHTTPMiddleware: it costs one header lookup per request. A chunked body
    (no Content-Length) is counted as it streams in and cut off past the limit; FastAPI then
    reports it as a body it could not read (400).
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await self._refuse(scope, receive, send)
                    return
                await self.app(scope, receive, send)
                return
        # No length given (chunked): count as the body streams in.
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise PayloadTooLarge(f"request body is over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"request body is over {self.limit} bytes")
        await error_response(error)(scope, receive, send)


def create_model_app(model_path: str, device: str = "cpu") -> FastAPI:
    """The model server's app, with the model loaded (so a bad path fails here, at start).

    Args:
        model_path: the model record's Lance path.
        device: torch device, e.g. "cpu".

    Raises:
        ModelNotFound: nothing at ``model_path``.
        InvalidRequest: not a model record this server can serve.
    """
    predictor = Predictor(model_path, device=device)
    info = predictor.info
    name = info.get("name") or os.path.basename(model_path)
    app = FastAPI(title=f"model server: {name}", version=str(info.get("version")))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.state.predictor = predictor
    metadata = {**info, "device": device}

    # Trivial routes answer on the event loop, so health checks pass while predictions queue.
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "version": info.get("version")}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return metadata

    # A plain def: decoding and the forward pass run in the thread pool, off the event loop.
    # The JSONResponse is built here so FastAPI skips its generic (slower) encoder.
    @app.post("/predict")
    def predict(body: PredictRequest) -> JSONResponse:
        if (body.image is None) == (body.images is None):
            raise InvalidRequest('give exactly one of "image" and "images"')
        if body.image is not None:
            return JSONResponse(predictor.predict([decode_image(body.image)])[0])
        assert body.images is not None
        if not body.images:
            raise InvalidRequest('"images" is empty')
        if len(body.images) > MAX_BATCH:
            raise InvalidRequest(f'"images" holds {len(body.images)} images; at most {MAX_BATCH}')
        images = []
        for i, b64 in enumerate(body.images):
            try:
                images.append(decode_image(b64))
            except InvalidRequest as exc:
                raise InvalidRequest(f"images[{i}]: {exc.message}") from None
        return JSONResponse({"predictions": predictor.predict(images)})

    return app


def _exit_with_parent(parent: int) -> None:
    """Exit when the platform that started us is gone (we are re-parented).

    Polling rather than PR_SET_PDEATHSIG: that signal fires when the *thread* that spawned us
    ends, and the platform may spawn from a short-lived worker thread.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("parent process %d is gone; exiting", parent)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load the model and serve it with uvicorn until stopped."""
    parser = argparse.ArgumentParser(description="Serve one model from the lake over HTTP.")
    parser.add_argument("--model-path", required=True, help="the model record's Lance path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--device", default="cpu", help='torch device, e.g. "cpu", "cuda"')
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per forward pass; requests already run in parallel threads",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        if os.getppid() != int(parent):
            sys.exit("the process that started this model server is gone")
        _exit_with_parent(int(parent))
    torch.set_num_threads(max(1, args.threads))
    try:
        app = create_model_app(args.model_path, device=args.device)
    except PlatformError as exc:
        # A clear one-line reason in the service's log, not a traceback.
        sys.exit(f"cannot serve {args.model_path}: {exc.code}: {exc.message}")
    log.info("serving %s on http://%s:%d", args.model_path, args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
    )


if __name__ == "__main__":
    main()
