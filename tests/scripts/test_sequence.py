"""scripts/training/sequence_model.py: a variable-length input and two outputs, saved with the
model API and served back from the record alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lakekit import models
from tests.scripts.test_tabular import load_script

sequence_model = load_script("training/sequence_model.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict[str, Any]]:
    lake = tmp_path_factory.mktemp("lake")
    data = sequence_model.make_dataset(str(lake / "waves.lance"), n=600, length=48, seed=1)
    out = str(lake / "waves_model.lance")
    return data, out, sequence_model.run(data, out, {"epochs": 6, "threads": 1})


def test_the_record_declares_a_variable_length_input_and_two_outputs(
    trained: tuple[str, str, dict[str, Any]],
) -> None:
    data, path, result = trained
    assert result["test_accuracy"] > 0.9
    info = models.read_model_info(path)
    assert info["signature"] == {
        "inputs": [{"name": "series", "dtype": "float32", "shape": [-1, -1]}],
        "outputs": [
            {"name": "logits", "dtype": "float32", "shape": [-1, 3]},
            {"name": "frequency", "dtype": "float32", "shape": [-1]},
        ],
    }
    assert info["labels"] == ["sawtooth", "sine", "square"]
    assert info["metrics"]["test_frequency_mae"] == result["test_frequency_mae"]
    assert info["source"]["path"] == data and info["source"]["version"] == 1
    assert models.check_model_record(path, load=True) is None


@pytest.mark.parametrize("length", [20, 48, 200])
def test_the_loaded_model_takes_any_length(
    trained: tuple[str, str, dict[str, Any]], length: int
) -> None:
    _, path, _ = trained
    x, kind, freq = sequence_model.waves(40, length, seed=99)
    out = models.load_model(path).infer(x)
    assert out["logits"].shape == (40, 3) and out["frequency"].shape == (40,)
    assert np.mean(out["logits"].argmax(1) == kind) > 0.8
    assert np.mean(np.abs(out["frequency"] - freq)) < 0.05
