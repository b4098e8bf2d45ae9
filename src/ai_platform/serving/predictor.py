"""Load a model from the lake and predict digits; decode and MNIST-normalise images.

Images arrive base64-encoded, either as 784 raw bytes (a 28x28 uint8 image, white digit on
black, as in MNIST) or as a PNG/JPEG of any size, which is normalised the way MNIST was made:
light backgrounds are inverted, the ink is cropped, scaled to fit 20x20 and centred by its
centre of mass in 28x28. A blank image (no ink) is still predicted: it becomes an all-black
28x28 image, and the answer's low confidence says what it is worth; refusing it would fail a
whole batch for one empty canvas.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lakeapi.errors import InvalidRequest
from lakekit import modelrec

SIDE = 28
RAW_BYTES = SIDE * SIDE
# Refuse images over this many pixels from their header, before decoding any pixel data.
MAX_PIXELS = 4096 * 4096
# Refuse encoded images over this size before base64-decoding them (about 12 MiB of text).
MAX_ENCODED_BYTES = 9 * 1024 * 1024
_FIT = 20  # MNIST: the digit is scaled to fit a 20x20 box ...
_CENTRE = 14.0
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG
_FORMATS = ("PNG", "JPEG")
_INK = 0.1  # fraction of the brightest pixel that counts as ink for the bounding box


def decode_image(b64: str) -> np.ndarray:
    """Decode one base64 image into a (28, 28) uint8 array, white digit on black.

    Args:
        b64: base64 of 784 raw pixel bytes, or of a PNG or JPEG file.

    Raises:
        InvalidRequest: empty, not base64, too large, or neither raw pixels nor an image.
    """
    if not isinstance(b64, str) or not b64:
        raise InvalidRequest("image is empty")
    if len(b64) > MAX_ENCODED_BYTES * 4 // 3 + 4:
        raise InvalidRequest(f"image is over {MAX_ENCODED_BYTES} bytes")
    try:
        raw = base64.b64decode(b64, validate=True)
        # Strict: only canonical base64 (Python accepts excess padding and non-zero pad bits).
        canonical = base64.b64encode(raw) == b64.encode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"image is not valid base64: {exc}") from None
    if not canonical:
        raise InvalidRequest("image is not valid base64: not in canonical form")
    if not raw:
        raise InvalidRequest("image is empty")
    if raw.startswith(_SIGNATURES):
        try:
            return normalize(_open_image(raw))
        except InvalidRequest:
            if len(raw) != RAW_BYTES:
                raise
            # Raw pixels that merely start like a JPEG (255, 216, 255, ...): take them as such.
    if len(raw) == RAW_BYTES:
        return np.frombuffer(raw, dtype=np.uint8).reshape(SIDE, SIDE)
    raise InvalidRequest(
        f"image is {len(raw)} bytes that are neither {RAW_BYTES} raw pixels (28x28 uint8) "
        "nor a PNG or JPEG file"
    )


def _open_image(raw: bytes) -> np.ndarray:
    """Decode PNG/JPEG bytes to a grayscale float array; refuse huge ones from the header."""
    try:
        # open() reads the header only; pixels are decoded by load() below.
        image: Image.Image = Image.open(io.BytesIO(raw), formats=_FORMATS)
    except Image.DecompressionBombError as exc:
        raise InvalidRequest(f"image is too large: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidRequest(f"image cannot be decoded: {exc}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise InvalidRequest(f"image is {width}x{height} pixels; the limit is {MAX_PIXELS}")
    if width == 0 or height == 0:
        raise InvalidRequest("image has no pixels")
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent pixels are background: flatten onto white, then handle as usual.
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        gray = image.convert("L")
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidRequest(f"image cannot be decoded: {exc}") from None
    return np.asarray(gray, dtype=np.float32)


def normalize(gray: np.ndarray) -> np.ndarray:
    """MNIST-normalise a grayscale image of any size into (28, 28) uint8, white on black."""
    if gray.mean() > 127:
        gray = 255 - gray  # dark ink on a light background: MNIST digits are white on black
    # The most common level is background (e.g. grey paper); ink is what stands above it.
    ink = np.clip(gray - np.median(gray), 0, None)
    peak = float(ink.max())
    if peak < 1:
        return np.zeros((SIDE, SIDE), dtype=np.uint8)  # blank: see the module docstring
    ink *= 255 / peak
    rows = np.flatnonzero((ink > _INK * 255).any(axis=1))
    cols = np.flatnonzero((ink > _INK * 255).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    factor = _FIT / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    glyph = Image.fromarray(crop.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    glyph_arr = np.asarray(glyph, dtype=np.float32)
    # ... and placed so that its centre of mass is at the centre of the 28x28 field.
    total = glyph_arr.sum()
    gh, gw = glyph_arr.shape
    cy = (glyph_arr.sum(axis=1) @ np.arange(gh)) / total if total else (gh - 1) / 2
    cx = (glyph_arr.sum(axis=0) @ np.arange(gw)) / total if total else (gw - 1) / 2
    # MNIST's centres of mass average (14.0, 14.0) in pixel-index coordinates.
    top = min(max(round(_CENTRE - cy), 0), SIDE - gh)
    left = min(max(round(_CENTRE - cx), 0), SIDE - gw)
    out = np.zeros((SIDE, SIDE), dtype=np.uint8)
    out[top : top + gh, left : left + gw] = np.clip(glyph_arr, 0, 255).astype(np.uint8)
    return out


class Predictor:
    """A model from the lake, ready to classify 28x28 uint8 images."""

    def __init__(self, model_path: str | os.PathLike[str], device: str = "cpu") -> None:
        """Load the model record at ``model_path``.

        Raises:
            ModelNotFound: nothing at ``model_path``.
            InvalidRequest: not a model record, or one this predictor cannot feed.
        """
        self.model_path = os.fspath(model_path)
        self.device = device
        self.model = modelrec.load_model(self.model_path, device=device)
        spec = self.model.input_spec
        if list(spec.get("shape", [])) != [1, SIDE, SIDE] or spec.get("dtype") != "float32":
            raise InvalidRequest(f"{self.model_path}: unsupported input spec {spec}")
        self._scale = float(spec.get("scale", 1 / 255))
        self._mean = float(spec.get("mean", 0.0))
        self._std = float(spec.get("std", 1.0))
        if not all(math.isfinite(v) for v in (self._scale, self._mean, self._std)) or not (
            self._std > 0
        ):
            raise InvalidRequest(f"{self.model_path}: bad normalisation in input spec {spec}")

    @property
    def info(self) -> dict[str, Any]:
        """The record's metadata (no weights)."""
        return self.model.info

    def predict(self, images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Classify a batch in one forward pass.

        Args:
            images: (28, 28) uint8 arrays, white digit on black.

        Returns:
            One ``{"prediction", "confidence", "probabilities"}`` per image, in order.

        Raises:
            InvalidRequest: an image that is not a (28, 28) uint8 array.
        """
        if not images:
            return []
        for image in images:
            if not isinstance(image, np.ndarray) or image.shape != (SIDE, SIDE):
                raise InvalidRequest(f"each image must be a {SIDE}x{SIDE} array")
            if image.dtype != np.uint8:
                raise InvalidRequest("each image must be uint8")
        batch = torch.from_numpy(np.stack(images)).to(self.device, dtype=torch.float32)
        x = batch.mul_(self._scale).sub_(self._mean).div_(self._std).unsqueeze(1)
        with torch.inference_mode():
            probs = torch.softmax(self.model.module(x).float(), dim=1).cpu().numpy()
        best = probs.argmax(axis=1)
        return [
            {
                "prediction": int(best[i]),
                "confidence": float(probs[i, best[i]]),
                "probabilities": probs[i].tolist(),
            }
            for i in range(len(probs))
        ]
