"""Bare training baseline: the same network and hyper-parameters, a plain PyTorch loop.

``python -m bench.bare_train DATASET --epochs N --batch-size B --learning-rate LR --threads T``;
prints one JSON line with the seconds of each epoch.

The network is ``build_model`` from ``scripts/training/mnist_cnn.py``; the data are read from
the same Lance dataset into in-memory tensors with the read recipe of ``mnist_clean``'s
docstring (not timed), normalised once. The loop is what one writes by hand: shuffle, index a
batch, forward, cross-entropy, backward, Adam step, one-cycle LR step (the same schedule as
the platform's, so both do the same work per step). An epoch's seconds cover the loop only,
as the platform's ``seconds_per_epoch`` does; test accuracy is measured after, as a check.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import lance
import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = 0.1307, 0.3081


def build_model() -> nn.Module:
    """``build_model`` of the repo's CNN script, imported from its file."""
    path = REPO / "scripts" / "training" / "mnist_cnn.py"
    spec = importlib.util.spec_from_file_location("bench_mnist_cnn", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model()


def load_split(path: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The read recipe from ``mnist_clean``'s docstring, then MNIST normalisation."""
    ds = lance.dataset(path)
    meta = ds.schema.field("image").metadata
    dtype = np.dtype(meta[b"mnist:dtype"].decode()).newbyteorder("<")
    scale = float(meta[b"mnist:scale"])
    tbl = ds.to_table(columns=["image", "label"], filter=f"split = '{split}'")
    x = np.empty((tbl.num_rows, 784), dtype)
    row = 0
    for chunk in tbl.column("image").chunks:
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32, n + 1, chunk.offset * 4)
        data = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        x[row : row + n] = data.view(dtype).reshape(n, 784)
        row += n
    images = torch.from_numpy(x.astype(np.float32)).mul_(scale).sub_(MEAN).div_(STD)
    labels = torch.from_numpy(tbl.column("label").to_numpy().astype(np.int64))
    return images.view(-1, 1, 28, 28), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = load_split(args.dataset, "train")
    x_test, y_test = load_split(args.dataset, "test")
    if args.limit:  # as the platform's ``limit``: at most this many rows of each split
        x, y = x[: args.limit], y[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]

    torch.manual_seed(args.seed)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    steps = args.epochs * math.ceil(len(x) / args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.learning_rate, total_steps=steps
    )
    shuffle = torch.Generator().manual_seed(args.seed)
    seconds = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), generator=shuffle)
        for start in range(0, len(x), args.batch_size):
            idx = order[start : start + args.batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        seconds.append(time.perf_counter() - started)

    model.eval()
    with torch.inference_mode():
        correct = sum(
            int((model(x_test[i : i + 1000]).argmax(1) == y_test[i : i + 1000]).sum())
            for i in range(0, len(x_test), 1000)
        )
    result = {
        "epoch_seconds": seconds,
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "test_accuracy": correct / len(x_test),
        "threads": torch.get_num_threads(),
        "train_rows": len(x),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
