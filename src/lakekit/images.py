"""The image codec: base64 images in, a classifier's answer out, over the generic runner.

Images arrive base64-encoded, either as 784 raw bytes (a 28x28 uint8 image, white digit on
black, as in MNIST) or as a PNG/JPEG of any size, which is normalised the way MNIST was made:
light backgrounds are inverted, the ink is cropped, scaled to fit 20x20 and centred by its
centre of mass in 28x28. A blank image (no ink) is still predicted: it becomes an all-black
28x28 image, and the answer's low confidence says what it is worth; refusing it would fail a
whole batch for one empty canvas.

Model servers decode requests with it, and the Data Platform's search decodes a query image
with it (so it lives in the runtime, which both import).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lakeapi.errors import InvalidRequest, PayloadTooLarge

SIDE = 28
RAW_BYTES = SIDE * SIDE
# Refuse images over this many pixels from their header, before decoding any pixel data.
MAX_PIXELS = 4096 * 4096
# Pixels one request may make the server decode, all its images together (the model server's
# ``--max-request-pixels``): 32 photos of 1024x1024, two images at the per-image limit, or
# 40,000 raw digits. Without it, a request of tiny files that each declare the per-image
# maximum (a 4096x4096 PNG of one colour is a few KB) costs minutes of CPU.
MAX_REQUEST_PIXELS = 32 * 1024 * 1024
# Refuse encoded images over this size before base64-decoding them (about 12 MiB of text).
MAX_ENCODED_BYTES = 9 * 1024 * 1024
_FIT = 20  # MNIST: the digit is scaled to fit a 20x20 box ...
_CENTRE = 14.0
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG
_FORMATS = ("PNG", "JPEG")
_INK = 0.1  # fraction of the brightest pixel that counts as ink for the bounding box


class PixelBudget:
    """What is left of one request's pixels (``MAX_REQUEST_PIXELS``); taken from each
    image's header before its pixels are decoded."""

    def __init__(self, max_pixels: int = MAX_REQUEST_PIXELS) -> None:
        self.max_pixels = max_pixels
        self.left = max_pixels

    def take(self, pixels: int) -> None:
        """Raises PayloadTooLarge (413) when ``pixels`` more would exceed the budget."""
        if pixels > self.left:
            raise PayloadTooLarge(
                f"the request's images hold over {self.max_pixels} pixels together "
                "(the model server's --max-request-pixels)"
            )
        self.left -= pixels


def decode_image(b64: str, budget: PixelBudget | None = None) -> np.ndarray:
    """Decode one base64 image into a (28, 28) uint8 array, white digit on black.

    Args:
        b64: base64 of 784 raw pixel bytes, or of a PNG or JPEG file.
        budget: the request's pixels left; this image's are taken from it.

    Raises:
        InvalidRequest: empty, not base64, too large, or neither raw pixels nor an image.
        PayloadTooLarge: the image would exceed ``budget``.
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
            return normalize(_open_image(raw, budget))
        except InvalidRequest:
            if len(raw) != RAW_BYTES:
                raise
            # Raw pixels that merely start like a JPEG (255, 216, 255, ...): take them as such.
    if len(raw) == RAW_BYTES:
        if budget is not None:
            budget.take(RAW_BYTES)
        return np.frombuffer(raw, dtype=np.uint8).reshape(SIDE, SIDE)
    raise InvalidRequest(
        f"image is {len(raw)} bytes that are neither {RAW_BYTES} raw pixels (28x28 uint8) "
        "nor a PNG or JPEG file"
    )


_RAW_GROUPS = RAW_BYTES // 3  # 261 whole 4-character groups, then one byte as "XY=="
RAW_B64_CHARS = 4 * (_RAW_GROUPS + 1)


def decode_raw_batch(images: Sequence[str]) -> np.ndarray | None:
    """Many base64 raw images at once: (N, 28, 28) uint8, exactly what ``decode_image`` gives
    each of them, or None when any is not plainly canonical raw pixels (then decode them one
    by one, for ``decode_image``'s answer and message).

    Two strict decodes of all the images joined instead of a decode, a re-encode and a
    comparison per image: the whole groups of every image, then every last group with its
    "==" read as "AA" (the byte it holds comes first; the next one is its pad bits, zero when
    canonical).
    """
    if not images or any(len(b64) != RAW_B64_CHARS or b64[-2:] != "==" for b64 in images):
        return None
    try:
        whole = binascii.a2b_base64("".join([b64[:-4] for b64 in images]), strict_mode=True)
        lasts = "AA".join([b64[-4:-2] for b64 in images]) + "AA"
        last = binascii.a2b_base64(lasts, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    tail = np.frombuffer(last, dtype=np.uint8).reshape(len(images), 3)
    if tail[:, 1].any():
        return None  # non-zero pad bits: not canonical
    raw = np.empty((len(images), RAW_BYTES), dtype=np.uint8)
    raw[:, :-1] = np.frombuffer(whole, dtype=np.uint8).reshape(len(images), RAW_BYTES - 1)
    raw[:, -1] = tail[:, 0]
    # Pixels that start like a PNG or JPEG are tried as one by decode_image first.
    if (raw[:, :3] == (0xFF, 0xD8, 0xFF)).all(axis=1).any() or (
        raw[:, :8] == np.frombuffer(_SIGNATURES[0], dtype=np.uint8)
    ).all(axis=1).any():
        return None
    return raw.reshape(len(images), SIDE, SIDE)


def _open_image(raw: bytes, budget: PixelBudget | None) -> np.ndarray:
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
    if budget is not None:
        budget.take(width * height)
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


class ImageCodec:
    """Feeds a (28, 28) uint8 image to an image model: its one (N, 1, 28, 28) float input.

    Args:
        preprocessing: the record's ``{"kind": "image", "scale", "mean", "std"}``.
        shape: the model's one input's shape, batch first (``[-1, 1, 28, 28]``).
        dtype: that input's dtype (``float32``).
        where: the model, for messages.

    Raises:
        InvalidRequest: a model this codec cannot feed, or bad normalisation parameters.
    """

    def __init__(
        self, preprocessing: Mapping[str, Any], shape: list[int], dtype: str, where: str
    ) -> None:
        if shape != [-1, 1, SIDE, SIDE] or dtype != "float32":
            raise InvalidRequest(
                f"{where}: unsupported input spec for images: {dtype} {shape} "
                f"(the image codec feeds float32 [-1, 1, {SIDE}, {SIDE}])"
            )
        # numpy scalars of the input's dtype: the arithmetic stays float32, as torch's did.
        self._scale = np.float32(preprocessing.get("scale", 1 / 255))
        self._mean = np.float32(preprocessing.get("mean", 0.0))
        self._std = np.float32(preprocessing.get("std", 1.0))
        values = (self._scale, self._mean, self._std)
        if not all(math.isfinite(float(v)) for v in values) or not self._std > 0:
            raise InvalidRequest(f"{where}: bad normalisation in preprocessing {preprocessing}")

    def encode(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The model's input (N, 1, 28, 28) for N images (arrays, or one (N, 28, 28) array),
        normalised in one go.

        Raises:
            InvalidRequest: an image that is not a (28, 28) uint8 array.
        """
        if isinstance(images, np.ndarray):
            if images.ndim != 3:
                raise InvalidRequest(f"each image must be a {SIDE}x{SIDE} array")
            if images.dtype != np.uint8:
                raise InvalidRequest("each image must be uint8")
            return self._normalised(images.astype(np.float32))
        for image in images:
            if not isinstance(image, np.ndarray) or image.shape != (SIDE, SIDE):
                raise InvalidRequest(f"each image must be a {SIDE}x{SIDE} array")
            if image.dtype != np.uint8:
                raise InvalidRequest("each image must be uint8")
        batch = (
            np.stack(images).astype(np.float32)
            if len(images)
            else np.empty((0, SIDE, SIDE), np.float32)
        )
        return self._normalised(batch)

    def _normalised(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:] != (SIDE, SIDE):
            raise InvalidRequest(f"each image must be a {SIDE}x{SIDE} array")
        batch *= self._scale
        batch -= self._mean
        batch /= self._std
        return batch.reshape(len(batch), 1, SIDE, SIDE)
