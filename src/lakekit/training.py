"""What every MNIST training script shares: read from Lance, train, evaluate, write the record.

A script defines its network and its defaults and calls :func:`train`; see
``scripts/training/mnist_cnn.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import torch
from torch import nn

from lakekit import datasets, models, progress

log = logging.getLogger(__name__)

LABELS = [str(digit) for digit in range(10)]
IMAGE_SHAPE = (28, 28)
# The usual MNIST statistics, on pixels scaled to [0, 1].
MEAN, STD = 0.1307, 0.3081
INPUT_SPEC = {
    "shape": [1, *IMAGE_SHAPE],
    "dtype": "float32",
    # Serving: uint8 pixels (white digit on black) * scale, then (x - mean) / std.
    "scale": 1 / 255,
    "mean": MEAN,
    "std": STD,
    "layout": "mnist",
}
# What the image codec of the serving side reads: INPUT_SPEC without shape and dtype.
PREPROCESSING = {"kind": "image", "scale": 1 / 255, "mean": MEAN, "std": STD, "layout": "mnist"}
# Every parameter a script accepts; a script's DEFAULTS gives a value to each.
PARAM_TYPES: dict[str, type] = {
    "epochs": int,
    "learning_rate": float,
    "batch_size": int,
    "device": str,
    "seed": int,
    # Optional: at most this many rows of each split (quick runs, tests).
    "limit": int,
    # Optional: torch intra-op threads (default: every CPU this process may use).
    "threads": int,
    # Progress report every this many optimiser steps (besides one per epoch).
    "log_every": int,
}
_OPTIONAL = {"limit", "threads"}
COMMON_DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "seed": 0,
    "limit": None,
    "threads": None,
    "log_every": 100,
}
_EVAL_BATCH = 1000


def resolve_params(
    params: dict[str, Any] | None,
    defaults: dict[str, Any],
    types: dict[str, type] | None = None,
    optional: frozenset[str] | set[str] = frozenset(_OPTIONAL),
) -> dict[str, Any]:
    """``defaults`` overridden by ``params``, type-checked.

    Args:
        params: what the task was given.
        defaults: the script's defaults (over ``COMMON_DEFAULTS`` when ``types`` is not given).
        types: every parameter the script accepts, with its type (default: the MNIST
            scripts' ``PARAM_TYPES``); those named in ``optional`` may be None.

    Raises:
        ValueError: an unknown name, a value of the wrong type, or one out of range.
    """
    mnist = types is None
    kinds = PARAM_TYPES if types is None else types
    merged = {**(COMMON_DEFAULTS if mnist else {}), **defaults, **(params or {})}
    unknown = sorted(set(merged) - set(kinds))
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {sorted(kinds)}")
    for name, kind in kinds.items():
        value = merged.get(name)
        if value is None:
            if name not in optional:
                raise ValueError(f"param {name} is required")
            merged[name] = None
            continue
        merged[name] = _coerce(name, value, kind)
    rate = merged.get("learning_rate")
    if rate is not None and (rate <= 0 or not math.isfinite(rate)):
        raise ValueError("param learning_rate must be a positive number")
    for name in ("epochs", "batch_size", "limit", "threads", "log_every"):
        if merged.get(name) is not None and merged[name] < 1:
            raise ValueError(f"param {name} must be >= 1")
    device = merged.get("device") or "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"param device={device!r} but CUDA is not available here")
    return merged


def _coerce(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"param {name} must be {kind.__name__}, got {value!r}")
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        raise ValueError(f"param {name} must be {kind.__name__}, got {value!r}")
    return value


def images_to_numpy(
    column: pa.ChunkedArray | pa.Array, metadata: dict[bytes, bytes] | None
) -> np.ndarray:
    """Turn a binary image column into an (N, 28, 28) array without a per-row Python loop.

    The column's field metadata says the pixel dtype (``mnist:dtype``, default uint8).

    Raises:
        ValueError: nulls, or a row whose size is not 28*28 pixels of that dtype.
    """
    meta = metadata or {}
    dtype = np.dtype(meta.get(b"mnist:dtype", b"uint8").decode())
    row_bytes = math.prod(IMAGE_SHAPE) * dtype.itemsize
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        arr = arr.cast(pa.large_binary())
    if arr.null_count:
        raise ValueError(f"image column has {arr.null_count} null rows")
    n = len(arr)
    if n == 0:
        return np.empty((0, *IMAGE_SHAPE), dtype=dtype)
    offset_type = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
    # buffers(): [validity, offsets, data]; the offsets of a sliced array start at arr.offset.
    offsets = np.frombuffer(arr.buffers()[1], dtype=offset_type)[arr.offset : arr.offset + n + 1]
    if not np.all(np.diff(offsets) == row_bytes):
        raise ValueError(f"image rows must be {row_bytes} bytes ({dtype} {IMAGE_SHAPE})")
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.view(dtype).reshape(n, *IMAGE_SHAPE)


def load_split(
    ds: lance.LanceDataset, split: str, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (normalised float images (N, 1, 28, 28), int64 labels (N,)).

    Only ``image`` and ``label`` are read, with the split filter pushed down to Lance.

    Raises:
        ValueError: the dataset lacks the columns, the split is empty, or labels are bad.
    """
    missing = {"image", "label", "split"} - set(ds.schema.names)
    if missing:
        raise ValueError(f"dataset lacks columns {sorted(missing)}")
    table = ds.to_table(columns=["image", "label"], filter=f"split = '{split}'", limit=limit)
    if table.num_rows == 0:
        raise ValueError(f"dataset has no rows with split = '{split}'")
    field_meta = ds.schema.field("image").metadata
    images = images_to_numpy(table.column("image"), field_meta)
    labels = table.column("label").to_numpy()
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(LABELS):
        raise ValueError(f"labels must be integers in [0, {len(LABELS) - 1}]")
    # The model always sees pixels in [0, 1], as INPUT_SPEC tells serving: uint8 pixels are
    # 0..255 whether or not the dataset was ingested with ``normalize``; floats carry their
    # own scale.
    if images.dtype == np.uint8:
        scale = 1 / 255
    else:
        scale = float((field_meta or {}).get(b"mnist:scale", 1.0))
    x = torch.from_numpy(images.astype(np.float32)).mul_(scale).sub_(MEAN).div_(STD)
    return x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on (x, y)."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(x), _EVAL_BATCH):
            xb = x[start : start + _EVAL_BATCH].to(device)
            yb = y[start : start + _EVAL_BATCH].to(device)
            logits = model(xb)
            loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(1) == yb).sum())
    return {"loss": loss / len(x), "accuracy": correct / len(x)}


def train(
    build: Callable[[], nn.Module],
    input_path: str,
    output_path: str,
    params: dict[str, Any] | None,
    *,
    defaults: dict[str, Any],
    architecture: str,
) -> dict[str, Any]:
    """Train ``build()`` on the train split, evaluate on the test split, write the record.

    Args:
        build: makes the (untrained) network; called after seeding.
        input_path: the MNIST Lance dataset (columns image, label, split).
        output_path: the model's Lance path (a new version if it exists).
        params: overrides of ``defaults`` (see ``PARAM_TYPES``).
        defaults: the script's defaults (over ``COMMON_DEFAULTS``).
        architecture: short description stored in the record.

    Returns:
        train_loss, test_loss, test_accuracy, epochs, seconds_per_epoch, model_version, ...

    Raises:
        DatasetNotFound: nothing at ``input_path``.
        ValueError: bad params or data.
    """
    p = resolve_params(params, defaults)
    threads_before = torch.get_num_threads()
    if p["threads"]:
        torch.set_num_threads(p["threads"])
    try:
        return _train(build, input_path, output_path, p, architecture)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    build: Callable[[], nn.Module],
    input_path: str,
    output_path: str,
    p: dict[str, Any],
    architecture: str,
) -> dict[str, Any]:
    ds = datasets.open_dataset(input_path)
    source = datasets.source_of(ds)
    x_train, y_train = load_split(ds, "train", p["limit"])
    x_test, y_test = load_split(ds, "test", p["limit"])
    log.info(
        "data: %d train, %d test rows (%s v%d)", len(x_train), len(x_test), input_path, ds.version
    )

    device = p["device"]
    torch.manual_seed(p["seed"])
    model = build().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p["learning_rate"])
    steps_per_epoch = math.ceil(len(x_train) / p["batch_size"])
    total_steps = p["epochs"] * steps_per_epoch
    # One-cycle: warm up then anneal; reaches a given accuracy in fewer epochs than a flat rate.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=p["learning_rate"], total_steps=total_steps
    )
    shuffle = torch.Generator().manual_seed(p["seed"])
    history: list[dict[str, Any]] = []
    train_seconds, step = 0.0, 0
    for epoch in range(1, p["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle)
        total_loss, seen = 0.0, 0
        for start in range(0, len(order), p["batch_size"]):
            idx = order[start : start + p["batch_size"]]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            total_loss += loss.item() * len(idx)
            seen += len(idx)
            if step % p["log_every"] == 0:
                progress.report(epoch=epoch, step=step, steps=total_steps, loss=total_loss / seen)
        seconds = time.perf_counter() - started
        train_seconds += seconds
        test = evaluate(model, x_test, y_test, device)
        point = {
            "epoch": epoch,
            "step": step,
            "train_loss": total_loss / seen,
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "seconds": round(seconds, 3),
        }
        history.append(point)
        progress.report(**point, epochs=p["epochs"], steps=total_steps)
        log.info("epoch %s", json.dumps(point))

    final = history[-1]
    metrics = {
        "train_loss": final["train_loss"],
        "test_loss": final["test_loss"],
        "test_accuracy": final["test_accuracy"],
        "epochs": p["epochs"],
        "seconds_per_epoch": round(train_seconds / p["epochs"], 3),
        "train_rows": len(x_train),
        "test_rows": len(x_test),
    }
    summary = models.save_model(
        output_path,
        model,
        x_test[:2],
        input_names=["image"],
        output_names=["logits"],
        preprocessing=PREPROCESSING,
        input_spec=INPUT_SPEC,
        params=p,
        metrics=metrics,
        history=history,
        source=source,
        labels=LABELS,
        architecture=architecture,
    )
    return {**metrics, "model_version": summary["version"], "model_path": summary["path"]}


def main(run: Callable[..., dict[str, Any]], defaults: dict[str, Any]) -> None:
    """Command line for a script: ``python SCRIPT INPUT OUTPUT [--epochs N ...]``."""
    parser = argparse.ArgumentParser(description="Train on an MNIST Lance dataset.")
    parser.add_argument("input_path")
    parser.add_argument("output_path")
    for name, kind in PARAM_TYPES.items():
        default = {**COMMON_DEFAULTS, **defaults}.get(name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    args = vars(parser.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = {k: v for k, v in args.items() if k in PARAM_TYPES}
    print(json.dumps(run(args["input_path"], args["output_path"], params), indent=2))
