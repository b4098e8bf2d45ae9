"""A small trained model for the serving tests (an MLP, trained once per session)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.lakekit.mnist_fixture import write_mnist_lance

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "training" / "mnist_mlp.py"


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``models/mnist_mlp_v1.lance``: 4000 real digits, 2 epochs, about 0.9 test accuracy."""
    lake = tmp_path_factory.mktemp("lake")
    data = write_mnist_lance(lake / "mnist.lance", 4000, 1000)
    spec = importlib.util.spec_from_file_location("mnist_mlp_for_serving", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = lake / "models" / "mnist_mlp_v1.lance"
    result = script.run(data, str(out), {"epochs": 2, "threads": 1})
    assert result["test_accuracy"] > 0.85
    return str(out)
