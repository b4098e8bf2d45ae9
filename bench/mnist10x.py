"""Scaled MNIST inputs for the linearity check: the real images, shifted, as the same 4 IDX files.

``write_scaled(src, dst, copies)`` writes ``copies`` shifted versions of every image, one shift
per copy (a pixel or two in different directions, zero-filled), so 10 copies are 700k real
looking digits that do not compress to nothing. ``copies=1`` writes the unshifted originals
through the same writer, so 1x and 10x differ only in size (same gzip level, same layout).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

SHIFTS = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1), (0, 2), (2, 0)]
NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Fast to write; inflating costs about the same per byte at any level, so the ingestion
# measured on these files is not flattered against the originals.
GZIP_LEVEL = 1


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move every (N, 28, 28) image by (dy, dx) pixels; what leaves the frame is dropped."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    src_y, dst_y = slice(max(-dy, 0), h - max(dy, 0)), slice(max(dy, 0), h - max(-dy, 0))
    src_x, dst_x = slice(max(-dx, 0), w - max(dx, 0)), slice(max(dx, 0), w - max(-dx, 0))
    out[:, dst_y, dst_x] = images[:, src_y, src_x]
    return out


def _read(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=header)


def write_scaled(src: Path, dst: Path, copies: int) -> int:
    """Write ``copies`` x MNIST into ``dst`` as gzipped IDX files; returns the total rows."""
    if not 1 <= copies <= len(SHIFTS):
        raise ValueError(f"copies must be 1..{len(SHIFTS)}")
    dst.mkdir(parents=True, exist_ok=True)
    shifts = [(0, 0)] if copies == 1 else SHIFTS[:copies]
    rows = 0
    for images_name, labels_name in NAMES.values():
        images = _read(src / f"{images_name}.gz", 16).reshape(-1, 28, 28)
        labels = _read(src / f"{labels_name}.gz", 8)
        n = len(labels) * len(shifts)
        rows += n
        with gzip.open(dst / f"{images_name}.gz", "wb", compresslevel=GZIP_LEVEL) as fh:
            fh.write(struct.pack(">IIII", 2051, n, 28, 28))
            for dy, dx in shifts:
                fh.write(shift(images, dy, dx).tobytes())
        with gzip.open(dst / f"{labels_name}.gz", "wb", compresslevel=GZIP_LEVEL) as fh:
            fh.write(struct.pack(">II", 2049, n))
            for _ in shifts:
                fh.write(labels.tobytes())
    return rows
