"""The model record: write, list cheaply, rebuild without the class, versions, refusals."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import lance
import pyarrow as pa
import pytest
import torch
from torch import nn

from lakeapi.errors import InvalidRequest, ModelNotFound
from lakekit import modelrec

SPEC = {"shape": [1, 28, 28], "dtype": "float32", "scale": 1 / 255, "mean": 0.1307, "std": 0.3081}
LABELS = [str(i) for i in range(10)]


class TinyCNN(nn.Module):
    """Defined only here: a loaded record does not need this class (see test_model_server)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def make_module(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    module = TinyCNN()
    module.train()
    module(torch.randn(8, 1, 28, 28))  # non-trivial BatchNorm running statistics
    return module


def write(path: Path, module: nn.Module, **overrides: object) -> dict:
    kwargs = {
        "module": module,
        "example_input": torch.randn(2, 1, 28, 28),
        "input_spec": SPEC,
        "params": {"epochs": 1, "learning_rate": 1e-3},
        "metrics": {"test_accuracy": 0.5, "train_loss": torch.tensor(1.25)},
        "history": [{"epoch": 1, "test_accuracy": 0.5}],
        "source": {"path": "/lake/datasets/mnist.lance", "name": "mnist", "version": 3},
        "labels": LABELS,
        "architecture": "tiny cnn",
        **overrides,
    }
    return modelrec.write_model(path, **kwargs)


def test_write_then_read_info(tmp_path: Path) -> None:
    path = tmp_path / "tiny_v1.lance"
    summary = write(path, make_module())
    assert summary["version"] == 1
    assert summary["name"] == "tiny_v1"
    assert summary["weights_bytes"] > 1000

    info = modelrec.read_model_info(path)
    assert "weights" not in info
    assert info["weights_bytes"] == summary["weights_bytes"]
    assert info["version"] == 1
    assert info["format"] == "torch.export"
    assert info["architecture"] == "tiny cnn"
    assert info["labels"] == LABELS
    assert info["input_spec"] == SPEC
    assert info["metrics"] == {"test_accuracy": 0.5, "train_loss": 1.25}
    assert info["history"] == [{"epoch": 1, "test_accuracy": 0.5}]
    assert info["source"]["version"] == 3
    assert info["framework"]["torch"] == torch.__version__
    assert datetime.fromisoformat(info["created_at"]).utcoffset().total_seconds() == 0
    # The columns are plain and readable without lakekit.
    row = lance.dataset(str(path)).to_table(columns=["params", "labels"]).to_pylist()[0]
    assert json.loads(row["params"]) == {"epochs": 1, "learning_rate": 1e-3}


def test_loaded_module_matches_and_has_a_dynamic_batch(tmp_path: Path) -> None:
    module = make_module()
    write(tmp_path / "m.lance", module)
    loaded = modelrec.load_model(tmp_path / "m.lance")
    assert loaded.labels == LABELS
    assert loaded.input_spec == SPEC
    assert not loaded.module.training
    assert loaded.module.eval() is loaded.module
    module.eval()
    with torch.inference_mode():
        for batch in (1, 3, 64):
            x = torch.randn(batch, 1, 28, 28)
            torch.testing.assert_close(loaded.module(x), module(x))
    with pytest.raises(RuntimeError, match="inference-only"):
        loaded.module.train()


def test_read_model_info_does_not_import_torch(tmp_path: Path) -> None:
    path = tmp_path / "m.lance"
    write(path, make_module())
    code = (
        "import sys; from lakekit import modelrec\n"
        f"info = modelrec.read_model_info({str(path)!r})\n"
        "assert info['weights_bytes'] > 0\n"
        "assert 'torch' not in sys.modules, 'listing models must not import torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_retrain_writes_a_new_version_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "m.lance"
    first, second = make_module(seed=1), make_module(seed=2)
    write(path, first)
    summary = write(path, second, metrics={"test_accuracy": 0.75})
    assert summary["version"] == 2
    assert modelrec.read_model_info(path)["metrics"] == {"test_accuracy": 0.75}
    assert modelrec.read_model_info(path, version=1)["metrics"]["test_accuracy"] == 0.5
    x = torch.randn(2, 1, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(modelrec.load_model(path).module(x), second.eval()(x))
        old = modelrec.load_model(path, version=1).module(x)
        torch.testing.assert_close(old, first.eval()(x))
    assert lance.dataset(str(path)).count_rows() == 1
    with pytest.raises(ModelNotFound):
        modelrec.read_model_info(path, version=7)


def test_missing_path_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound):
        modelrec.read_model_info(tmp_path / "nope.lance")
    with pytest.raises(ModelNotFound):
        modelrec.load_model(tmp_path / "nope.lance")
    (tmp_path / "empty.lance").mkdir()
    with pytest.raises(ModelNotFound):
        modelrec.read_model_info(tmp_path / "empty.lance")


def test_not_a_model_record_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data.lance"
    lance.write_dataset(pa.table({"id": [1, 2]}), str(data))
    with pytest.raises(InvalidRequest, match="not a model record"):
        modelrec.read_model_info(data)
    with pytest.raises(InvalidRequest, match="not a model record"):
        modelrec.load_model(data)
    # ... and never overwritten by a model.
    with pytest.raises(InvalidRequest):
        write(data, make_module())
    assert lance.dataset(str(data)).to_table().column("id").to_pylist() == [1, 2]

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "file.txt").write_text("hello")
    with pytest.raises(InvalidRequest, match="not a model record"):
        modelrec.read_model_info(junk)


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.lance"
    write(path, make_module())
    table = lance.dataset(str(path)).to_table()
    weights = table.column("weights")[0].as_py()
    bad = weights[:100] + bytes([weights[100] ^ 0xFF]) + weights[101:]
    index = table.schema.get_field_index("weights")
    table = table.set_column(index, table.schema.field(index), pa.array([bad], pa.large_binary()))
    lance.write_dataset(table, str(path), mode="overwrite")
    with pytest.raises(InvalidRequest, match="checksum"):
        modelrec.load_model(path)
    # A consistent checksum over bytes that are not a program: refused, not a crash.
    junk = b"not a pt2 archive"
    table = table.set_column(index, table.schema.field(index), pa.array([junk], pa.large_binary()))
    sha = table.schema.get_field_index("weights_sha256")
    digest = pa.array([hashlib.sha256(junk).hexdigest()])
    table = table.set_column(sha, table.schema.field(sha), digest)
    lance.write_dataset(table, str(path), mode="overwrite")
    with pytest.raises(InvalidRequest, match="cannot rebuild"):
        modelrec.load_model(path)


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # control flow on values: torch.export cannot capture it
            return x.flatten(1)[:, :10]
        return -x.flatten(1)[:, :10]


def test_unexportable_module_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "m.lance"
    with pytest.raises(ValueError, match=r"torch\.export"):
        write(path, DataDependent())
    assert not path.exists()


def test_write_leaves_the_callers_module_alone(tmp_path: Path) -> None:
    module = make_module()
    assert module.training
    write(tmp_path / "m.lance", module)
    assert module.training
