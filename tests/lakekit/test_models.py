"""The model API: save with an inferred signature, load and infer, check records (v1 and v2)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from lakeapi.errors import InvalidRequest
from lakekit import datasets, modelrec, models
from tests.lakekit.test_modelrec import LABELS, SPEC, make_module


class TwoInputs(nn.Module):
    """Named outputs from a dict; a variable-length second input."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(4, 3)
        self.embed = nn.Embedding(10, 3)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.embed(tokens).mean(1)
        return {"scores": self.dense(x) + pooled, "norm": pooled.norm(dim=1)}


def tabular(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def test_signature_is_inferred_from_one_example(tmp_path: Path) -> None:
    summary = models.save_model(
        tmp_path / "t.lance",
        tabular(),
        torch.randn(5, 8),
        input_names=["features"],
        output_names=["logits"],
        labels=["a", "b", "c"],
        metrics={"accuracy": torch.tensor(0.5)},
    )
    expected = {
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, 8]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 3]}],
    }
    assert summary["signature"] == expected
    info = models.read_model_info(tmp_path / "t.lance")
    assert info["signature"] == expected
    assert info["record_version"] == modelrec.RECORD_VERSION == 2
    assert info["preprocessing"] is None
    assert info["input_spec"] == {"shape": [8], "dtype": "float32"}
    assert info["labels"] == ["a", "b", "c"]
    assert info["metrics"] == {"accuracy": 0.5}
    assert info["architecture"] == "Sequential"
    assert models.check_model_record(tmp_path / "t.lance") is None
    assert models.check_model_record(tmp_path / "t.lance", load=True) is None


def test_several_inputs_dict_outputs_and_a_variable_axis(tmp_path: Path) -> None:
    module = TwoInputs().eval()
    example = (torch.randn(3, 4), torch.randint(0, 10, (3, 7)))
    path = tmp_path / "two.lance"
    summary = models.save_model(
        path, module, example, input_names=["x", "tokens"], dynamic_axes={"tokens": [1]}
    )
    assert summary["signature"] == {
        "inputs": [
            {"name": "x", "dtype": "float32", "shape": [-1, 4]},
            {"name": "tokens", "dtype": "int64", "shape": [-1, -1]},
        ],
        "outputs": [
            {"name": "scores", "dtype": "float32", "shape": [-1, 3]},
            {"name": "norm", "dtype": "float32", "shape": [-1]},
        ],
    }
    loaded = models.load_model(path)
    x, tokens = np.random.rand(2, 4).astype(np.float32), np.array([[1] * 12, [2] * 12])
    out = loaded.infer({"x": x, "tokens": tokens})  # a length the example never had
    with torch.inference_mode():
        want = module(torch.from_numpy(x), torch.from_numpy(tokens))
    np.testing.assert_allclose(out["scores"], want["scores"].numpy(), rtol=1e-5)
    np.testing.assert_allclose(out["norm"], want["norm"].numpy(), rtol=1e-5)
    info = models.read_model_info(path)
    assert info["input_spec"] == {
        "inputs": {
            "x": {"shape": [4], "dtype": "float32"},
            "tokens": {"shape": [-1], "dtype": "int64"},
        }
    }
    assert models.check_model_record(path, load=True) is None


def test_infer_names_the_input_and_the_expected_shape(tmp_path: Path) -> None:
    models.save_model(tmp_path / "t.lance", tabular(), torch.randn(2, 8), input_names=["features"])
    loaded = models.load_model(tmp_path / "t.lance")
    assert loaded.infer(np.zeros((3, 8), np.float32))["output"].shape == (3, 3)
    assert loaded.infer({"features": [[0.0] * 8]})["output"].shape == (1, 3)
    with pytest.raises(InvalidRequest, match=r"'features' has shape \[3, 7\], expected \[-1, 8\]"):
        loaded.infer({"features": np.zeros((3, 7), np.float32)})
    with pytest.raises(InvalidRequest, match="'features' has dtype float64, expected float32"):
        loaded.infer({"features": np.zeros((3, 8))})
    with pytest.raises(InvalidRequest, match=r"unknown inputs \['x'\]"):
        loaded.infer({"features": np.zeros((1, 8), np.float32), "x": [1]})
    with pytest.raises(InvalidRequest, match="'features' is missing"):
        loaded.infer({})
    with pytest.raises(InvalidRequest, match="not float32 data"):
        loaded.infer({"features": [["a"] * 8]})


def test_an_explicit_signature_is_checked_against_the_network(tmp_path: Path) -> None:
    good = {
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, 8]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 3]}],
    }
    summary = models.save_model(tmp_path / "ok.lance", tabular(), torch.randn(2, 8), signature=good)
    assert summary["signature"] == good
    wrong = json.loads(json.dumps(good))
    wrong["outputs"][0]["shape"] = [-1, 4]
    with pytest.raises(ValueError, match=r"'logits' is float32 \[-1, 4\], the network's is"):
        models.save_model(tmp_path / "bad.lance", tabular(), torch.randn(2, 8), signature=wrong)
    assert not (tmp_path / "bad.lance").exists()
    with pytest.raises(ValueError, match="batch and must be -1"):
        models.save_model(
            tmp_path / "bad.lance",
            tabular(),
            torch.randn(2, 8),
            signature={**good, "inputs": [{"name": "f", "dtype": "float32", "shape": [2, 8]}]},
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ["a", "b"]}, "2 labels, but the first output 'output' has shape"),
        ({"preprocessing": {"kind": "audio"}}, "kind 'audio' is not known"),
        ({"preprocessing": {"kind": "image", "std": 0}}, "std must be positive"),
        ({"input_names": ["a", "b"]}, "2 input names for 1 inputs"),
        ({"input_names": ["bad name"]}, "not a valid name"),
        ({"dynamic_axes": {"nope": [1]}}, "unknown inputs"),
        ({"dynamic_axes": {"input": [0]}}, "not a non-batch axis"),
        ({"dynamic_axes": {"input": [1]}}, "torch.export"),  # Linear(8, ...) fixes that axis
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    path = tmp_path / "m.lance"
    with pytest.raises(ValueError, match=message):
        models.save_model(path, tabular(), torch.randn(2, 8), **kwargs)
    assert not path.exists()


class Total(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()  # no batch dimension left


def test_an_output_without_a_batch_dimension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first dimension must be the batch"):
        models.save_model(tmp_path / "m.lance", Total(), torch.randn(2, 8))


def write_v1(path: Path, module: nn.Module) -> None:
    """A record in the layout before signatures (record_version 1), as older scripts wrote."""
    weights = modelrec.export_module(module, torch.randn(2, 1, 28, 28))
    v1 = [f for f in modelrec.SCHEMA if f.name not in modelrec.ADDED_IN_V2]
    schema = pa.schema(v1, metadata={b"lakekit:record": b"model", b"lakekit:record_version": b"1"})
    row = {
        "name": "old",
        "architecture": "tiny cnn",
        "format": "torch.export",
        "weights": weights,
        "weights_bytes": len(weights),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "num_parameters": 1,
        "input_spec": json.dumps(SPEC),
        "labels": LABELS,
        "params": "{}",
        "metrics": "{}",
        "history": "[]",
        "source": json.dumps({"path": "/lake/datasets/mnist.lance", "version": 3}),
        "framework": "{}",
        "created_at": "2026-01-01T00:00:00+00:00",
        "record_version": 1,
    }
    lance.write_dataset(pa.Table.from_pylist([row], schema=schema), str(path))


def test_a_version_1_record_reads_with_a_derived_signature(tmp_path: Path) -> None:
    path = tmp_path / "old.lance"
    module = make_module().eval()
    write_v1(path, module)
    info = models.read_model_info(path)
    assert info["record_version"] == 1
    assert info["input_spec"] == SPEC
    assert info["signature"] == {
        "inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 1, 28, 28]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 10]}],
    }
    assert info["preprocessing"] == {
        "kind": "image",
        "scale": 1 / 255,
        "mean": 0.1307,
        "std": 0.3081,
    }
    assert models.check_model_record(path, load=True) is None
    loaded = models.load_model(path)
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        np.testing.assert_allclose(
            loaded.infer({"image": x.numpy()})["logits"], module(x).numpy(), rtol=1e-5
        )
    # Re-training writes the new layout as the next version; the old version still reads.
    models.save_model(
        path, module, x, input_names=["image"], output_names=["logits"], labels=LABELS
    )
    assert models.read_model_info(path)["record_version"] == 2
    assert models.read_model_info(path, version=1)["signature"] == info["signature"]


def rewrite(path: Path, **columns: object) -> None:
    table = lance.dataset(str(path)).to_table()
    for name, value in columns.items():
        index = table.schema.get_field_index(name)
        field = table.schema.field(index)
        table = table.set_column(index, field, pa.array([value], field.type))
    lance.write_dataset(table, str(path), mode="overwrite")


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"signature": json.dumps({"inputs": []})}, "signature.inputs must be a non-empty list"),
        ({"signature": "{not json"}, "column signature is not valid JSON"),
        ({"labels": ["only", "two"]}, "2 labels, but the first output"),
        ({"record_version": 9}, "record_version 9 is not one this lakekit reads"),
        ({"format": "onnx"}, "unsupported model format 'onnx'"),
        ({"weights_sha256": "0" * 64}, "checksum"),
        ({"preprocessing": json.dumps({"kind": "video"})}, "kind 'video' is not known"),
    ],
)
def test_check_model_record_says_what_is_wrong(tmp_path: Path, columns: dict, message: str) -> None:
    path = tmp_path / "m.lance"
    models.save_model(path, tabular(), torch.randn(2, 8), labels=["a", "b", "c"])
    rewrite(path, **columns)
    problem = models.check_model_record(path)
    assert problem is not None and message in problem


def test_check_model_record_on_nothing_and_on_other_data(tmp_path: Path) -> None:
    problem = models.check_model_record(tmp_path / "none.lance")
    assert problem is not None and "no model at" in problem and "save_model" in problem
    lance.write_dataset(pa.table({"x": [1]}), str(tmp_path / "data.lance"))
    problem = models.check_model_record(tmp_path / "data.lance")
    assert problem is not None and "not a model record" in problem


def test_check_with_load_runs_the_network(tmp_path: Path) -> None:
    path = tmp_path / "m.lance"
    models.save_model(path, tabular(), torch.randn(2, 8))
    # A signature that passes every static check but does not match the network.
    sig = models.read_model_info(path)["signature"]
    sig["inputs"][0]["shape"] = [-1, 5]
    rewrite(path, signature=json.dumps(sig))
    assert models.check_model_record(path) is None
    problem = models.check_model_record(path, load=True)
    assert problem is not None and "does not run on inputs shaped like its signature" in problem


def test_storage_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        datasets.ENV_VAR, '{"aws_endpoint": "http://127.0.0.1:9000", "allow_http": true}'
    )
    assert datasets.storage_options() == {
        "aws_endpoint": "http://127.0.0.1:9000",
        "allow_http": "true",
    }
    monkeypatch.setenv(datasets.ENV_VAR, "[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        datasets.storage_options()
    monkeypatch.setenv(datasets.ENV_VAR, "{oops")
    with pytest.raises(ValueError, match="LAKEKIT_STORAGE_OPTIONS is not valid JSON"):
        models.save_model("/nonexistent/m.lance", tabular(), torch.randn(2, 8))


def test_checking_a_record_does_not_import_torch(tmp_path: Path) -> None:
    path = tmp_path / "m.lance"
    models.save_model(path, tabular(), torch.randn(2, 8), labels=["a", "b", "c"])
    code = (
        "import sys; from lakekit import models\n"
        f"assert models.check_model_record({str(path)!r}) is None\n"
        f"assert models.check_model_record({str(path / 'nope')!r})\n"
        "assert 'torch' not in sys.modules, 'the platform checks records without torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_bfloat16_model_takes_and_gives_float32_arrays(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = nn.Linear(4, 2).to(torch.bfloat16)
    path = tmp_path / "bf16.lance"
    summary = models.save_model(path, module, torch.randn(3, 4, dtype=torch.bfloat16))
    assert summary["signature"]["inputs"][0]["dtype"] == "bfloat16"
    x = np.random.rand(5, 4).astype(np.float32)
    out = models.load_model(path).infer(x)["output"]
    assert out.dtype == np.float32 and out.shape == (5, 2)
    with torch.inference_mode():
        want = module(torch.from_numpy(x).to(torch.bfloat16)).float().numpy()
    np.testing.assert_array_equal(out, want)
    assert models.check_model_record(path, load=True) is None
