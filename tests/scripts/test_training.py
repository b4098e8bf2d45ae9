"""The training scripts (imported by file path, as the platform does) and lakekit.training."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import lance
import numpy as np
import pyarrow as pa
import pytest
import torch

from lakeapi.errors import DatasetNotFound
from lakekit import modelrec, progress, training
from tests.lakekit.mnist_fixture import mnist_arrays, write_mnist_lance

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "training"
N_TRAIN, N_TEST = 2000, 500


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mnist_cnn = load_script("mnist_cnn")
mnist_mlp = load_script("mnist_mlp")


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_mnist_lance(tmp_path_factory.mktemp("lake") / "mnist.lance", N_TRAIN, N_TEST)


def test_images_to_numpy_reads_the_buffer_of_a_sliced_array() -> None:
    images, _ = mnist_arrays("test", 6)
    arr = pa.array([row.tobytes() for row in images.reshape(6, -1)], pa.binary())
    out = training.images_to_numpy(arr.slice(2, 3), {b"mnist:dtype": b"uint8"})
    np.testing.assert_array_equal(out, images[2:5])
    large = arr.cast(pa.large_binary())
    chunked = pa.chunked_array([large.slice(0, 2), large.slice(2, 4)])
    np.testing.assert_array_equal(training.images_to_numpy(chunked, None), images)


def test_images_to_numpy_refuses_bad_rows() -> None:
    with pytest.raises(ValueError, match="784 bytes"):
        training.images_to_numpy(pa.array([b"\0" * 784, b"\0" * 783]), None)
    with pytest.raises(ValueError, match="3136 bytes"):  # float32 pixels are 4 bytes each
        training.images_to_numpy(pa.array([b"\0" * 784]), {b"mnist:dtype": b"float32"})
    with pytest.raises(ValueError, match="null"):
        training.images_to_numpy(pa.array([b"\0" * 784, None]), None)


def test_load_split_pushes_the_filter_and_float32_matches_uint8(tmp_path: Path) -> None:
    u8 = lance.dataset(write_mnist_lance(tmp_path / "u8.lance", 30, 20))
    f32 = lance.dataset(write_mnist_lance(tmp_path / "f32.lance", 30, 20, dtype="float32"))
    x, y = training.load_split(u8, "test")
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), mnist_arrays("test", 20)[1])
    x32, y32 = training.load_split(f32, "test")
    torch.testing.assert_close(x32, x)
    assert torch.equal(y32, y)
    assert len(training.load_split(u8, "train", limit=7)[0]) == 7
    with pytest.raises(ValueError, match="no rows"):
        training.load_split(u8, "validation")


def test_cnn_trains_writes_a_record_that_predicts_like_the_trained_model(
    mnist: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    progress_file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV_VAR, str(progress_file))
    out = tmp_path / "models" / "mnist_cnn_v1.lance"
    result = mnist_cnn.run(mnist, str(out), {"epochs": 1, "log_every": 10, "threads": 1})

    assert set(result) >= {
        "train_loss",
        "test_accuracy",
        "test_loss",
        "epochs",
        "seconds_per_epoch",
        "model_version",
    }
    assert result["epochs"] == 1 and result["model_version"] == 1
    assert result["test_accuracy"] > 0.8  # 2000 real digits, one epoch

    info = modelrec.read_model_info(out)
    assert info["architecture"].startswith("mnist_cnn")
    assert info["metrics"]["test_accuracy"] == result["test_accuracy"]
    assert info["source"] == {"path": mnist, "name": "mnist", "version": 1}
    assert info["params"]["epochs"] == 1 and info["params"]["batch_size"] == 64
    assert [h["epoch"] for h in info["history"]] == [1]
    assert info["input_spec"] == training.INPUT_SPEC

    # The record's module scores exactly what the trained module scored.
    loaded = modelrec.load_model(out)
    x, y = training.load_split(lance.dataset(mnist), "test")
    assert training.evaluate(loaded.module, x, y, "cpu")["accuracy"] == result["test_accuracy"]

    points = progress.Follower(progress_file).poll()
    assert any("step" in p and "loss" in p and "test_accuracy" not in p for p in points)
    assert points[-1]["epoch"] == 1 and points[-1]["test_accuracy"] == result["test_accuracy"]


def test_same_seed_same_model_and_retrain_adds_a_version(mnist: str, tmp_path: Path) -> None:
    out = tmp_path / "mlp.lance"
    params = {"epochs": 1, "limit": 500, "seed": 7, "threads": 1}
    first = mnist_mlp.run(mnist, str(out), params)
    second = mnist_mlp.run(mnist, str(out), params)
    assert second["model_version"] == 2
    assert first["test_loss"] == second["test_loss"]
    x = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        a = modelrec.load_model(out, version=1).module(x)
        b = modelrec.load_model(out, version=2).module(x)
    assert torch.equal(a, b)
    assert modelrec.read_model_info(out)["architecture"].startswith("mnist_mlp")
    other = mnist_mlp.run(mnist, str(out), {**params, "seed": 8})
    assert other["test_loss"] != first["test_loss"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epoch": 1}, "unknown params"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"epochs": True}, "epochs must be int"),
        ({"learning_rate": "fast"}, "learning_rate must be float"),
        ({"learning_rate": -1.0}, "learning_rate must be a positive"),
        ({"batch_size": 2.5}, "batch_size must be int"),
        ({"limit": 0}, "limit must be >= 1"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"seed": "x"}, "param"),
    ],
)
def test_bad_params_are_refused_before_training(
    mnist: str, tmp_path: Path, params: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mnist_cnn.run(mnist, str(tmp_path / "m.lance"), params)
    assert not (tmp_path / "m.lance").exists()


def test_params_from_json_are_coerced() -> None:
    p = training.resolve_params({"epochs": 2.0, "learning_rate": 1}, mnist_cnn.DEFAULTS)
    assert p["epochs"] == 2 and isinstance(p["epochs"], int)
    assert p["learning_rate"] == 1.0 and isinstance(p["learning_rate"], float)


def test_missing_input_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound):
        mnist_cnn.run(str(tmp_path / "nope.lance"), str(tmp_path / "m.lance"), {})


def test_uint8_pixels_are_scaled_to_unit_range_whatever_the_ingest_normalize(tmp_path):
    """Serving feeds pixels * 1/255; training must have seen the same range either way."""
    import lance
    import numpy as np
    import pyarrow as pa

    from lakekit.training import load_split

    pixels = np.full((2, 784), 255, dtype=np.uint8)
    for scale in ("1.0", str(1 / 255)):
        field = pa.field(
            "image", pa.binary(), metadata={"mnist:dtype": "uint8", "mnist:scale": scale}
        )
        table = pa.table(
            {
                "image": pa.array([row.tobytes() for row in pixels], pa.binary()),
                "label": pa.array([1, 2], pa.int64()),
                "split": pa.array(["train", "train"]),
            },
            schema=pa.schema([field, ("label", pa.int64()), ("split", pa.string())]),
        )
        path = tmp_path / f"d{scale}.lance"
        lance.write_dataset(table, str(path))
        x, _ = load_split(lance.dataset(str(path)), "train")
        assert np.allclose(x.numpy().max(), (1 - 0.1307) / 0.3081, atol=1e-4)
