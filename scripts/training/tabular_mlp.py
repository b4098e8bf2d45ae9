"""Train an MLP classifier on a tabular Lance dataset and save it with the model API.

The input is what ``scripts/pipelines/csv_clean.py`` writes: float32 feature columns, a
``label`` string column and a ``split`` column (``train``/``test``); the schema metadata names
the features (``lakekit:features``) and classes (``lakekit:classes``). The saved model takes
the raw features, ``features`` float32 [-1, n_features], in that order (the standardisation
learnt on the train split is part of the network) and returns ``logits`` [-1, n_classes],
labelled by the classes: tensors in, tensors out, no preprocessing.

By hand: ``python scripts/training/tabular_mlp.py <lake>/datasets/machine_health.lance
/tmp/machine_health_mlp.lance --epochs 20``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from lakekit import datasets, models, progress, training

# Every parameter, with its type; None defaults are optional.
PARAM_TYPES: dict[str, type] = {
    "epochs": int,
    "learning_rate": float,
    "batch_size": int,
    "hidden": int,
    "seed": int,
    "threads": int,
    # Optional: the feature columns, when the dataset's metadata does not name them.
    "features": list,
}
DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "learning_rate": 3e-3,
    "batch_size": 64,
    "hidden": 64,
    "seed": 0,
    "threads": None,
    "features": None,
}


class Standardize(nn.Module):
    """(x - mean) / std with the train split's statistics, stored in the exported network."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_model(n_features: int, n_classes: int, hidden: int, x_train: torch.Tensor) -> nn.Module:
    """Standardisation, then two hidden ReLU layers."""
    std = x_train.std(0).clamp_min(1e-6)
    return nn.Sequential(
        Standardize(x_train.mean(0), std),
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


def load(
    ds: Any, features: list[str], classes: list[str], split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (float32 features (N, F), int64 class ids (N,))."""
    table = datasets.read_table(ds, columns=[*features, "label"], filter=f"split = '{split}'")
    if table.num_rows == 0:
        raise ValueError(f"dataset has no rows with split = '{split}'")
    x = np.stack([table.column(f).to_numpy().astype(np.float32) for f in features], axis=1)
    index = {name: i for i, name in enumerate(classes)}
    try:
        y = np.array([index[v] for v in table.column("label").to_pylist()], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc} is not one of the classes {classes}") from None
    return torch.from_numpy(x), torch.from_numpy(y)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model.eval()
    with torch.inference_mode():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    return {"loss": loss, "accuracy": accuracy}


def run(input_path: str, output_path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on split train, test on split test, save the model at ``output_path``.

    Params (all optional): epochs, learning_rate, batch_size, hidden, seed, threads, features.
    """
    p = training.resolve_params(params, DEFAULTS, PARAM_TYPES, {"threads", "features"})
    ds = datasets.open_dataset(input_path)
    meta = ds.schema.metadata or {}
    features = p["features"] or json.loads(meta.get(b"lakekit:features", b"null"))
    if not features:
        raise ValueError("the dataset names no features (lakekit:features): pass params.features")
    if not all(isinstance(f, str) for f in features):
        raise ValueError(f"param features must be a list of column names, got {features!r}")
    missing = sorted({*features, "label", "split"} - set(ds.schema.names))
    if missing:
        raise ValueError(f"dataset lacks columns {missing}")
    classes = json.loads(meta.get(b"lakekit:classes", b"null")) or sorted(
        set(datasets.read_table(ds, columns=["label"]).column("label").to_pylist())
    )
    threads_before = torch.get_num_threads()
    if p["threads"]:
        torch.set_num_threads(p["threads"])
    try:
        x_train, y_train = load(ds, features, classes, "train")
        x_test, y_test = load(ds, features, classes, "test")
        model, history = fit(x_train, y_train, x_test, y_test, len(classes), p)
    finally:
        torch.set_num_threads(threads_before)
    final = history[-1]
    metrics = {
        "train_loss": final["train_loss"],
        "test_loss": final["test_loss"],
        "test_accuracy": final["test_accuracy"],
        "epochs": p["epochs"],
        "train_rows": len(x_train),
        "test_rows": len(x_test),
    }
    summary = models.save_model(
        output_path,
        model,
        x_test[:4],
        input_names=["features"],
        output_names=["logits"],
        labels=classes,
        params={**p, "features": features},
        metrics=metrics,
        history=history,
        source=ds,
        architecture=f"tabular_mlp: standardise, FC({len(features)}->{p['hidden']})+ReLU, "
        f"FC({p['hidden']}->{p['hidden']})+ReLU, FC({p['hidden']}->{len(classes)})",
    )
    return {**metrics, "model_version": summary["version"], "model_path": summary["path"]}


def fit(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    p: dict[str, Any],
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Adam with mini-batches; one progress report and one history point per epoch."""
    torch.manual_seed(p["seed"])
    model = build_model(x_train.shape[1], n_classes, p["hidden"], x_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=p["learning_rate"])
    shuffle = torch.Generator().manual_seed(p["seed"])
    history: list[dict[str, Any]] = []
    for epoch in range(1, p["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle)
        total = 0.0
        for start in range(0, len(order), p["batch_size"]):
            idx = order[start : start + p["batch_size"]]
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        test = evaluate(model, x_test, y_test)
        point = {
            "epoch": epoch,
            "train_loss": total / len(x_train),
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "seconds": round(time.perf_counter() - started, 3),
        }
        history.append(point)
        progress.report(**point, epochs=p["epochs"])
    return model, history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_path")
    parser.add_argument("output_path")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    args = parser.parse_args()
    result = run(args.input_path, args.output_path, {"epochs": args.epochs})
    print(json.dumps(result, indent=2))
