"""The platform's own routes of a model server: ``/health``, ``/v1/model``, ``/v1/stats`` and
``POST /predict`` (images for image models, the JSON convenience for any model).

``/predict`` takes exactly one of ``{"image": "<base64>"}`` (one answer), ``{"images": [...]}``
(``{"predictions": [...]}``) and ``{"inputs": [[...], ...]}`` or ``{"inputs": {"name": ...}}``.
Errors are the platform's envelope ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ai_platform.serving.protocol.dataplane import MAX_BATCH, DataPlane
from lakeapi.errors import InvalidRequest
from lakekit.images import (
    RAW_BYTES,
    PixelBudget,
    decode_image,
    decode_raw_batch,
)

__all__ = ["MAX_BATCH", "predict_answer", "v1_router"]


class PredictRequest(BaseModel):
    """Exactly one of ``image`` and ``images`` (base64: raw 28x28 bytes, PNG or JPEG), for
    image models, or ``inputs`` (nested lists, or an object of them by input name)."""

    image: str | None = None
    images: list[str] | None = None
    inputs: list[Any] | dict[str, Any] | None = None


_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}
_RAW_B64 = len(base64.b64encode(bytes(RAW_BYTES)))  # base64 of 28x28 raw pixels
_KEYS = ("image", "images", "inputs")


def _body_of(body: bytes) -> dict[str, Any]:
    """The predict body, with exactly one of its keys."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("body is not JSON this server reads: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidRequest('body must be a JSON object with "image", "images" or "inputs"')
    if sum(data.get(key) is not None for key in _KEYS) != 1:
        raise InvalidRequest('give exactly one of "image", "images" and "inputs"')
    return data


def _images_of(data: dict[str, Any], most: int) -> tuple[list[str], bool]:
    """The base64 images of a predict body, and whether it gave one ``image`` (answered
    unwrapped) rather than ``images``."""
    image, images = data.get("image"), data.get("images")
    if image is not None:
        if not isinstance(image, str):
            raise InvalidRequest('"image" must be a base64 string')
        return [image], True
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise InvalidRequest('"images" must be a list of base64 strings')
    if not images:
        raise InvalidRequest('"images" is empty')
    if len(images) > most:
        raise InvalidRequest(f'"images" holds {len(images)} images; at most {most}')
    return images, False


def _decode_all(images: list[str], single: bool, budget: PixelBudget) -> list[np.ndarray]:
    if single:
        return [decode_image(images[0], budget)]
    decoded = []
    for i, b64 in enumerate(images):
        try:
            decoded.append(decode_image(b64, budget))
        except InvalidRequest as exc:
            raise InvalidRequest(f"images[{i}]: {exc.message}") from None
    return decoded


async def predict_answer(plane: DataPlane, body: bytes) -> Any:
    """``POST /predict``'s answer to ``body``: raw pixels are decoded on the event loop
    (microseconds), PNG/JPEG in the thread pool, and the forward pass is the batcher's.

    Raises:
        PlatformError: the body is refused (400, 413).
    """
    data = _body_of(body)
    if data.get("inputs") is not None:
        return await plane.predict_json(data["inputs"])
    plane.image_codec()  # refuse images for a tensor model before decoding them
    images, single = _images_of(data, plane.limits.max_rows)
    budget = PixelBudget(plane.limits.max_pixels)
    decoded: np.ndarray | list[np.ndarray]
    raw = decode_raw_batch(images)
    if raw is not None:
        budget.take(raw.size)
        decoded = raw
    elif all(len(b64) == _RAW_B64 for b64 in images):
        # Not all canonical raw pixels: one by one, for the right answer or message.
        decoded = _decode_all(images, single, budget)
    else:
        decoded = await run_in_threadpool(_decode_all, images, single, budget)
    results = await plane.predict_images(decoded)
    return results[0] if single else {"predictions": results}


def v1_router(plane: DataPlane, name: str, metadata: dict[str, Any]) -> APIRouter:
    """The platform's routes over ``plane``; ``metadata`` is what ``/v1/model`` answers."""
    router = APIRouter()
    info = plane.runner.info
    batcher = plane.batcher

    # Trivial routes answer on the event loop, so health checks pass while predictions queue.
    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "version": info.get("version")}

    @router.get("/v1/model")
    async def model() -> dict[str, Any]:
        return metadata

    @router.get("/v1/stats")
    async def stats() -> dict[str, int]:
        """Predictions served: requests, images (rows), and the forward passes they shared."""
        return {
            "requests": batcher.requests,
            "images": batcher.images,
            "forward_passes": batcher.passes,
        }

    # The hot path reads the body itself rather than through a pydantic model (the schema is
    # still documented); ``fast_path.HotRoutes`` answers it without the router, through the
    # same ``predict_answer``.
    @router.post("/predict", openapi_extra=_PREDICT_BODY)
    async def predict(request: Request) -> JSONResponse:
        return JSONResponse(await predict_answer(plane, await request.body()))

    return router
