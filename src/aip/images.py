"""Turn what a caller has (bytes, a path, a numpy array, a PIL image) into the base64 the
predict endpoint takes. The server does all the MNIST normalisation; here nothing is resized.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from typing import Any

RAW_SIDE = 28

ImageLike = Any  # bytes | str | os.PathLike | numpy.ndarray | PIL.Image.Image


def encode_image(image: ImageLike) -> str:
    """Base64 of ``image`` as the platform's predict endpoint takes it.

    Args:
        image: the bytes of a PNG/JPEG file (or 784 raw pixel bytes); a path (``str`` or
            ``os.PathLike``) to such a file; a numpy uint8 array, either (28, 28) (sent as raw
            pixels, white digit on black as in MNIST) or any other 2-D or (H, W, 3|4) size (sent
            as PNG); or a PIL image (sent as PNG).

    Raises:
        FileNotFoundError: a path that does not exist.
        TypeError: something that is none of the above.
        ValueError: an array that is not uint8, or of an unusable shape.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str | os.PathLike):
        with open(image, "rb") as fh:
            data = fh.read()
    elif _is_pil_image(image):
        data = _png(image)
    elif hasattr(image, "__array_interface__"):
        data = _array_bytes(image)
    else:
        raise TypeError(
            f"cannot send {type(image).__name__} as an image: use bytes, a path, "
            "a numpy uint8 array or a PIL image"
        )
    if not data:
        raise ValueError("image is empty")
    return base64.b64encode(data).decode("ascii")


def _is_pil_image(image: Any) -> bool:
    # Only if the caller already imported PIL: an object cannot be a PIL image otherwise, and
    # the import costs time the CLI should not pay.
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(image, pil.Image)


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _array_bytes(image: Any) -> bytes:
    import numpy as np

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image array must be uint8 (0-255), not {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 1:  # (1, H, W), as a model input
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.shape == (RAW_SIDE, RAW_SIDE):
        # Raw pixels: exact, and no PNG round trip.
        return np.ascontiguousarray(arr).tobytes()
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        from PIL import Image

        return _png(Image.fromarray(np.ascontiguousarray(arr)))
    raise ValueError(f"image array has shape {arr.shape}; use (H, W), (H, W, 3) or (H, W, 4)")
