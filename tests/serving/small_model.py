"""A small trained model for the serving and AI Platform tests (an MLP on real digits)."""

from __future__ import annotations

import base64
import importlib.util
import shutil
from functools import cache
from pathlib import Path

from tests.lakekit.mnist_fixture import mnist_arrays, write_mnist_lance
from tests.support import process_scratch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "training" / "mnist_mlp.py"
MODEL = "mnist_mlp_v1"


def train_mlp(lake: Path) -> str:
    """``lake/models/mnist_mlp_v1.lance``: 4000 real digits, 2 epochs, about 0.9 accuracy."""
    shutil.copytree(_trained(), lake, dirs_exist_ok=True)
    return str(lake / "models" / f"{MODEL}.lance")


# Trained once per test process, and each of the dozen lakes that serve it gets a copy:
# training is seeded, so every run would write the same model anyway.
@cache
def _trained() -> Path:
    lake = process_scratch("mnist-mlp-")
    _train_into(lake)
    return lake


def _train_into(lake: Path) -> None:
    data = write_mnist_lance(lake / "_train_data" / "mnist.lance", 4000, 1000)
    spec = importlib.util.spec_from_file_location("mnist_mlp_for_serving", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = lake / "models" / f"{MODEL}.lance"
    result = script.run(data, str(out), {"epochs": 2, "threads": 1})
    assert result["test_accuracy"] > 0.85


def raw_digits(count: int) -> tuple[list[str], list[int]]:
    """The first official test digits as base64 raw pixels, and their labels."""
    images, labels = mnist_arrays("test", count)
    return [base64.b64encode(i.tobytes()).decode() for i in images], labels.tolist()
