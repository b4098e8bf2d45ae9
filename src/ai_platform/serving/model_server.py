"""The model server: one process serving one model from the lake over HTTP.

``python -m ai_platform.serving.model_server --model-path P --host 127.0.0.1 --port N``

Routes: ``GET /health``, ``GET /v1/model`` (the record's metadata), ``GET /v1/stats``
(requests, images and forward passes so far) and ``POST /predict`` with
``{"image": "<base64>"}`` (one result) or ``{"images": [...]}`` (``{"predictions": [...]}``).
Concurrent predictions share forward passes (``batching.Batcher``).
Every error is ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import threading
import time
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ai_platform.serving.batching import Batcher
from ai_platform.serving.predictor import RAW_BYTES, Predictor, decode_image
from lakeapi.errors import InvalidRequest, PlatformError
from serverkit.http import Guard, install_error_handlers
from serverkit.procs import PARENT_ENV

log = logging.getLogger(__name__)

MAX_BATCH = 1024
# The whole request body; far above a full batch of raw images (1024 * ~1.1 KB of base64).
MAX_BODY_BYTES = 64 * 1024 * 1024


class PredictRequest(BaseModel):
    """Exactly one of ``image`` and ``images``, each base64 (raw 28x28 bytes, PNG or JPEG)."""

    image: str | None = None
    images: list[str] | None = None


_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}
_RAW_B64 = len(base64.b64encode(bytes(RAW_BYTES)))  # base64 of 28x28 raw pixels


def _images_of(body: bytes) -> tuple[list[str], bool]:
    """The base64 images of a predict body, checked as ``PredictRequest`` describes, and
    whether it gave one ``image`` (answered unwrapped) rather than ``images``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest('body must be a JSON object with "image" or "images"')
    image, images = data.get("image"), data.get("images")
    if (image is None) == (images is None):
        raise InvalidRequest('give exactly one of "image" and "images"')
    if image is not None:
        if not isinstance(image, str):
            raise InvalidRequest('"image" must be a base64 string')
        return [image], True
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise InvalidRequest('"images" must be a list of base64 strings')
    if not images:
        raise InvalidRequest('"images" is empty')
    if len(images) > MAX_BATCH:
        raise InvalidRequest(f'"images" holds {len(images)} images; at most {MAX_BATCH}')
    return images, False


def _decode_all(images: list[str], single: bool) -> list[np.ndarray]:
    if single:
        return [decode_image(images[0])]
    decoded = []
    for i, b64 in enumerate(images):
        try:
            decoded.append(decode_image(b64))
        except InvalidRequest as exc:
            raise InvalidRequest(f"images[{i}]: {exc.message}") from None
    return decoded


def create_model_app(
    model_path: str, device: str = "cpu", max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    """The model server's app, with the model loaded (so a bad path fails here, at start).

    Args:
        model_path: the model record's Lance path.
        device: torch device, e.g. "cpu".
        max_body_bytes: larger request bodies are refused with 413 before they are read.

    Raises:
        ModelNotFound: nothing at ``model_path``.
        InvalidRequest: not a model record this server can serve.
    """
    predictor = Predictor(model_path, device=device)
    info = predictor.info
    name = info.get("name") or os.path.basename(model_path)
    app = FastAPI(title=f"model server: {name}", version=str(info.get("version")))
    install_error_handlers(app)
    # The platform's own guard, without an API key: services bind loopback, behind the platform.
    app.add_middleware(Guard, api_key=None, max_body_bytes=max_body_bytes)
    app.state.predictor = predictor
    metadata = {**info, "device": device}
    batcher = Batcher(predictor.predict, max_images=MAX_BATCH)
    app.state.batcher = batcher
    app.router.on_shutdown.append(batcher.close)

    # Trivial routes answer on the event loop, so health checks pass while predictions queue.
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "version": info.get("version")}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return metadata

    @app.get("/v1/stats")
    async def stats() -> dict[str, int]:
        """Predictions served: requests, images, and the forward passes they shared."""
        return {
            "requests": batcher.requests,
            "images": batcher.images,
            "forward_passes": batcher.passes,
        }

    # The hot path reads the body itself rather than through a pydantic model (the schema is
    # still documented), decodes raw pixels on the event loop (microseconds) and PNG/JPEG in
    # the thread pool, and hands the forward pass to the batcher.
    @app.post("/predict", openapi_extra=_PREDICT_BODY)
    async def predict(request: Request) -> JSONResponse:
        images, single = _images_of(await request.body())
        if all(len(b64) == _RAW_B64 for b64 in images):
            decoded = _decode_all(images, single)
        else:
            decoded = await run_in_threadpool(_decode_all, images, single)
        results = await batcher.predict(decoded)
        if single:
            return JSONResponse(results[0])
        return JSONResponse({"predictions": results})

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
