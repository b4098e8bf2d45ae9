"""Small MNIST Lance datasets for tests, cut from the real IDX files in data/raw/mnist.

Same layout as the ingestion pipeline writes: ``id`` int64, ``image`` binary (784 pixels per
row; field metadata ``mnist:dtype/shape/scale``, zstd), ``label`` int64, ``split`` string.
"""

from __future__ import annotations

import gzip
import shutil
from functools import cache
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

from tests.support import process_scratch

RAW = Path(__file__).resolve().parents[2] / "data" / "raw" / "mnist"
_FILES = {"train": "train", "test": "t10k"}


@cache
def _idx(name: str) -> bytes:
    with gzip.open(RAW / f"{name}.gz", "rb") as fh:
        return fh.read()


def mnist_arrays(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images (n, 28, 28) uint8 and labels (n,) int64 of a split."""
    prefix = _FILES[split]
    images = np.frombuffer(_idx(f"{prefix}-images-idx3-ubyte"), np.uint8, offset=16)
    labels = np.frombuffer(_idx(f"{prefix}-labels-idx1-ubyte"), np.uint8, offset=8)
    return images.reshape(-1, 28, 28)[:n].copy(), labels[:n].astype(np.int64)


def write_mnist_lance(path: Path, n_train: int, n_test: int, dtype: str = "uint8") -> str:
    """Write the first rows of each split as a Lance dataset; ``dtype`` uint8 or float32."""
    # Written once per test process and copied: the 70k-row one takes seconds to encode.
    shutil.copytree(_written(n_train, n_test, dtype), path)
    return str(path)


@cache
def _written(n_train: int, n_test: int, dtype: str) -> Path:
    path = process_scratch("mnist-lance-") / "mnist.lance"
    parts, start = [], 0
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = mnist_arrays(split, n)
        if dtype == "float32":
            images = images.astype(np.float32) / 255
        flat = images.reshape(n, -1)
        values = [row.tobytes() for row in flat]
        parts.append(
            pa.table(
                {
                    "id": pa.array(np.arange(start, start + n), pa.int64()),
                    "image": pa.array(values, pa.binary()),
                    "label": pa.array(labels, pa.int64()),
                    "split": pa.array([split] * n, pa.string()),
                }
            )
        )
        start += n
    scale = "0.00392156862745098" if dtype == "uint8" else "1.0"
    metadata = {
        "mnist:dtype": dtype,
        "mnist:shape": "28,28",
        "mnist:scale": scale,
        "lance-encoding:compression": "zstd",
    }
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("image", pa.binary(), metadata=metadata),
            pa.field("label", pa.int64()),
            pa.field("split", pa.string()),
        ]
    )
    lance.write_dataset(pa.concat_tables(parts).cast(schema), str(path))
    return path
