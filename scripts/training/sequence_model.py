"""Train a small 1-D convolutional model on waveforms of any length: one input, two outputs.

The third model shape the platform serves with the same generic code (after the MNIST image
classifiers and the tabular MLP): the input ``series`` is float32 [-1, -1] (a batch of series
whose length may vary from call to call), and the network returns two outputs:

- ``logits`` float32 [-1, 3]: the waveform's kind, labelled ``sawtooth``, ``sine``, ``square``;
- ``frequency`` float32 [-1]: its frequency in cycles per sample (a regression).

The input dataset has ``series`` (fixed_size_list<float32>), ``kind`` (string), ``frequency``
(float32) and ``split``; :func:`make_dataset` writes one (deterministic, from a seed), for
tests and demos: ``python scripts/training/sequence_model.py --make /tmp/waves.lance``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import torch
from torch import nn

from lakekit import datasets, models, progress, training

KINDS = ["sawtooth", "sine", "square"]
PARAM_TYPES: dict[str, type] = {
    "epochs": int,
    "learning_rate": float,
    "batch_size": int,
    "seed": int,
    "threads": int,
}
DEFAULTS: dict[str, Any] = {
    "epochs": 8,
    "learning_rate": 1e-2,
    "batch_size": 64,
    "seed": 0,
    "threads": None,
}
_FREQ_SCALE = 10.0  # frequencies are ~0.02..0.2: the regression head learns 10x the value


def waves(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` noisy waveforms (n, length) float32, their kind ids and frequencies."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, len(KINDS), n)
    freq = rng.uniform(0.02, 0.2, n).astype(np.float32)
    phase = rng.uniform(0, 1, (n, 1))
    cycles = np.arange(length)[None, :] * freq[:, None] + phase
    frac = cycles % 1.0
    shapes = np.stack([2 * frac - 1, np.sin(2 * np.pi * cycles), np.where(frac < 0.5, 1.0, -1.0)])
    x = shapes[kind, np.arange(n)] * rng.uniform(0.5, 2.0, (n, 1))
    x = x + rng.normal(0, 0.1, x.shape)
    return x.astype(np.float32), kind, freq


def make_dataset(uri: str, n: int = 1200, length: int = 64, seed: int = 0) -> str:
    """Write ``n`` waveforms of ``length`` samples as a Lance dataset (a fifth of them test)."""
    x, kind, freq = waves(n, length, seed)
    table = pa.table(
        {
            "id": pa.array(np.arange(n), pa.int64()),
            "series": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), length),
            "kind": pa.array([KINDS[k] for k in kind]),
            "frequency": pa.array(freq, pa.float32()),
            "split": pa.array(np.where(np.arange(n) % 5 == 0, "test", "train")),
        }
    )
    lance.write_dataset(table, uri, storage_options=datasets.storage_options())
    return uri


class WaveNet(nn.Module):
    """Two convolutions, a mean over time (any length), two heads."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding=3),
            nn.ReLU(),
            nn.Conv1d(16, 32, 7, padding=3),
            nn.ReLU(),
        )
        self.kind = nn.Linear(64, len(KINDS))
        self.frequency = nn.Linear(64, 1)

    def forward(self, series: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(series.unsqueeze(1))
        pooled = torch.cat([h.mean(2), h.amax(2)], dim=1)
        return self.kind(pooled), self.frequency(pooled).squeeze(1) / _FREQ_SCALE


def load(ds: lance.LanceDataset, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    table = datasets.read_table(
        ds, columns=["series", "kind", "frequency"], filter=f"split = '{split}'"
    )
    if table.num_rows == 0:
        raise ValueError(f"dataset has no rows with split = '{split}'")
    series = table.column("series").combine_chunks()
    width = series.type.list_size
    x = series.flatten().to_numpy().astype(np.float32).reshape(-1, width)
    kind = np.array([KINDS.index(k) for k in table.column("kind").to_pylist()])
    freq = table.column("frequency").to_numpy().astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(kind), torch.from_numpy(freq)


def evaluate(model: nn.Module, x: torch.Tensor, kind: torch.Tensor, freq: torch.Tensor) -> dict:
    model.eval()
    with torch.inference_mode():
        logits, predicted = model(x)
    return {
        "accuracy": (logits.argmax(1) == kind).float().mean().item(),
        "frequency_mae": (predicted - freq).abs().mean().item(),
    }


def run(input_path: str, output_path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on split train, test on split test, save the two-output model.

    Params (all optional): epochs, learning_rate, batch_size, seed, threads.
    """
    p = training.resolve_params(params, DEFAULTS, PARAM_TYPES, {"threads"})
    ds = datasets.open_dataset(input_path)
    threads_before = torch.get_num_threads()
    if p["threads"]:
        torch.set_num_threads(p["threads"])
    try:
        x, kind, freq = load(ds, "train")
        test = load(ds, "test")
        torch.manual_seed(p["seed"])
        model = WaveNet()
        optimizer = torch.optim.Adam(model.parameters(), lr=p["learning_rate"])
        shuffle = torch.Generator().manual_seed(p["seed"])
        history = []
        for epoch in range(1, p["epochs"] + 1):
            model.train()
            total = 0.0
            for idx in torch.randperm(len(x), generator=shuffle).split(p["batch_size"]):
                logits, predicted = model(x[idx])
                loss = nn.functional.cross_entropy(logits, kind[idx]) + nn.functional.mse_loss(
                    predicted * _FREQ_SCALE, freq[idx] * _FREQ_SCALE
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            point = {"epoch": epoch, "train_loss": total / len(x), **evaluate(model, *test)}
            history.append(point)
            progress.report(**point, epochs=p["epochs"])
    finally:
        torch.set_num_threads(threads_before)
    final = history[-1]
    metrics = {
        "train_loss": final["train_loss"],
        "test_accuracy": final["accuracy"],
        "test_frequency_mae": final["frequency_mae"],
        "epochs": p["epochs"],
    }
    summary = models.save_model(
        output_path,
        model,
        test[0][:4],
        input_names=["series"],
        output_names=["logits", "frequency"],
        dynamic_axes={"series": [1]},  # any length
        labels=KINDS,
        params=p,
        metrics=metrics,
        history=history,
        source=ds,
        architecture="sequence_model: conv1d(1->16,k7)+ReLU, conv1d(16->32,k7)+ReLU, "
        "mean+max over time, FC(64->3) kind, FC(64->1) frequency",
    )
    return {**metrics, "model_version": summary["version"], "model_path": summary["path"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="INPUT OUTPUT, or the dataset to --make")
    parser.add_argument("--make", action="store_true", help="write a waveform dataset")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    args = parser.parse_args()
    if args.make:
        print(make_dataset(args.paths[0]))
    else:
        print(json.dumps(run(args.paths[0], args.paths[1], {"epochs": args.epochs}), indent=2))
