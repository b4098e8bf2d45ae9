"""Tests for scripts/pipelines/mnist_clean.py on the real MNIST files shipped in data/raw/mnist.

Corrupt inputs are made in tmp_path from the real files; nothing of ours is mocked.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import re
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pipelines" / "mnist_clean.py"
RAW = ROOT / "data" / "raw" / "mnist"
NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def load_script() -> ModuleType:
    """Import the script by file path, the way the platform does."""
    spec = importlib.util.spec_from_file_location("mnist_clean_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mnist_clean = load_script()


@functools.cache
def raw_bytes(name: str) -> bytes:
    """Decompressed bytes of one shipped IDX file (cached: several tests compare against it)."""
    with gzip.open(RAW / f"{name}.gz", "rb") as fh:
        return fh.read()


def raw_images(name: str) -> np.ndarray:
    return np.frombuffer(raw_bytes(name), np.uint8, offset=16).reshape(-1, 784)


def raw_labels(name: str) -> np.ndarray:
    return np.frombuffer(raw_bytes(name), np.uint8, offset=8)


def make_input(directory: Path, replace: dict[str, bytes] | None = None) -> Path:
    """The real files (symlinked), with some replaced by ``{file name: content}``.

    A replacement named without ``.gz`` hides the real gzip of that name (gzip is preferred).
    """
    directory.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    for name in NAMES:
        if name in replace:
            continue
        if f"{name}.gz" in replace:
            continue
        os.symlink(RAW / f"{name}.gz", directory / f"{name}.gz")
    for file_name, content in replace.items():
        (directory / file_name).write_bytes(content)
    return directory


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def recipe_code() -> str:
    """The read recipe from the module docstring, as code (so the documentation is tested)."""
    doc = mnist_clean.__doc__
    assert doc is not None
    block = doc[doc.index("Reading the images as numpy") :].split("::\n\n", 1)[1]
    lines = []
    for line in block.split("\n"):
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def read_train_with_recipe(path: Path) -> dict[str, Any]:
    scope: dict[str, Any] = {"path": str(path)}
    exec(recipe_code(), scope)
    return scope


def existing_dataset(path: Path) -> lance.LanceDataset:
    """A dataset already at the output path (what a previous ingestion left)."""
    return lance.write_dataset(pa.table({"marker": [1, 2, 3]}), str(path))


def assert_untouched(path: Path) -> None:
    ds = lance.dataset(str(path))
    assert ds.version == 1
    assert [v["version"] for v in ds.versions()] == [1]
    assert ds.to_table().column("marker").to_pylist() == [1, 2, 3]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("lake") / "mnist_clean.lance"
    stats = mnist_clean.run(str(RAW), str(out), {})
    return out, stats


def test_stats_of_the_real_mnist(ingested: tuple[Path, dict[str, Any]]) -> None:
    _, stats = ingested
    assert stats["total_records"] == 70000
    assert stats["train_records"] == 60000
    assert stats["test_records"] == 10000
    assert stats["invalid_records"] == 0
    assert stats["version"] == 1
    # The representation is compressed raw uint8 bytes: far below the 55 MB of plain pixels
    # (about 11.9 MB; Parquet-zstd of the same rows is about 12.1 MB).
    assert 5_000_000 < stats["bytes_written"] < 13_000_000
    assert stats["seconds"] > 0


def test_rows_splits_ids_and_labels(ingested: tuple[Path, dict[str, Any]]) -> None:
    out, _ = ingested
    ds = lance.dataset(str(out))
    assert ds.count_rows() == 70000
    assert ds.count_rows(filter="split = 'train'") == 60000
    assert ds.count_rows(filter="split = 'test'") == 10000
    table = ds.to_table(columns=["id", "split", "label"])
    ids = table.column("id").to_numpy()
    splits = np.asarray(table.column("split").to_pylist())
    labels = table.column("label").to_numpy()
    np.testing.assert_array_equal(ids, np.arange(70000))
    assert (splits[:60000] == "train").all() and (splits[60000:] == "test").all()
    assert labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(labels[:60000], raw_labels(NAMES[1]))
    np.testing.assert_array_equal(labels[60000:], raw_labels(NAMES[3]))


def test_schema_and_metadata(ingested: tuple[Path, dict[str, Any]]) -> None:
    out, _ = ingested
    schema = lance.dataset(str(out)).schema
    assert [(f.name, f.type, f.nullable) for f in schema] == [
        ("id", pa.int64(), False),
        ("split", pa.string(), False),
        ("label", pa.int64(), False),
        ("image", pa.binary(), False),
    ]
    meta = schema.field("image").metadata
    assert meta[b"mnist:dtype"] == b"uint8"
    assert meta[b"mnist:shape"] == b"28,28"
    assert float(meta[b"mnist:scale"]) == 1.0
    assert meta[b"lance-encoding:compression"] == b"zstd"
    assert meta[b"lance-encoding:structural-encoding"] == b"miniblock"
    assert schema.metadata[b"normalized"] == b"false"


def test_pixels_equal_the_idx_bytes(ingested: tuple[Path, dict[str, Any]]) -> None:
    out, _ = ingested
    ds = lance.dataset(str(out))
    train, test = raw_images(NAMES[0]), raw_images(NAMES[2])
    rows = ds.take([0, 1, 59999, 60000, 69999], columns=["id", "image"]).to_pylist()
    expected = [train[0], train[1], train[59999], test[0], test[9999]]
    for row, pixels in zip(rows, expected, strict=True):
        assert row["image"] == pixels.tobytes()


def test_documented_read_recipe(ingested: tuple[Path, dict[str, Any]]) -> None:
    out, _ = ingested
    scope = read_train_with_recipe(out)
    assert scope["x"].dtype == np.uint8 and scope["x"].shape == (60000, 784)
    np.testing.assert_array_equal(scope["x"], raw_images(NAMES[0]))
    np.testing.assert_array_equal(scope["y"], raw_labels(NAMES[1]))
    assert scope["scale"] == 1.0


def test_overwrite_keeps_the_previous_version(tmp_path: Path) -> None:
    out = tmp_path / "mnist.lance"
    first = mnist_clean.run(str(RAW), str(out), {"limit": 30})
    second = mnist_clean.run(str(RAW), str(out), {"limit": 20, "normalize": True})
    assert (first["version"], second["version"], second["previous_version"]) == (1, 2, 1)
    assert lance.dataset(str(out)).count_rows() == 40
    assert lance.dataset(str(out), version=1).count_rows() == 60


def test_normalize_keeps_uint8_and_records_the_scale(tmp_path: Path) -> None:
    out = tmp_path / "mnist.lance"
    stats = mnist_clean.run(str(RAW), str(out), {"normalize": True, "limit": 100})
    assert (stats["total_records"], stats["train_records"], stats["test_records"]) == (
        200,
        100,
        100,
    )
    ds = lance.dataset(str(out))
    meta = ds.schema.field("image").metadata
    assert ds.schema.metadata[b"normalized"] == b"true"
    assert meta[b"mnist:dtype"] == b"uint8"
    assert float(meta[b"mnist:scale"]) == pytest.approx(1 / 255)
    ids = ds.to_table(columns=["id"]).column("id").to_pylist()
    assert ids == list(range(100)) + list(range(60000, 60100))  # ids stay stable under limit
    scope = read_train_with_recipe(out)
    floats = scope["x"] * np.float32(scope["scale"])
    assert floats.min() == 0.0 and floats.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(scope["x"], raw_images(NAMES[0])[:100])


def test_float32_materialises_normalised_values(tmp_path: Path) -> None:
    out = tmp_path / "mnist.lance"
    mnist_clean.run(str(RAW), str(out), {"normalize": True, "dtype": "float32", "limit": 50})
    ds = lance.dataset(str(out))
    meta = ds.schema.field("image").metadata
    assert meta[b"mnist:dtype"] == b"float32" and float(meta[b"mnist:scale"]) == 1.0
    scope = read_train_with_recipe(out)
    expected = raw_images(NAMES[0])[:50].astype(np.float32) / np.float32(255)
    assert scope["x"].dtype == np.float32
    np.testing.assert_allclose(scope["x"], expected, rtol=1e-6)


def test_plain_idx_files_are_accepted(tmp_path: Path) -> None:
    src = tmp_path / "plain"
    make_input(src, {name: raw_bytes(name) for name in NAMES})
    stats = mnist_clean.run(str(src), str(tmp_path / "out.lance"), {"limit": 10})
    assert stats["total_records"] == 20
    assert all(not p.endswith(".gz") for paths in stats["inputs"].values() for p in paths)


def test_multi_member_gzip_is_accepted(tmp_path: Path) -> None:
    # ISIZE only covers the last member: the size check must fall back to a full pass.
    data = raw_bytes(NAMES[3])
    half = len(data) // 2
    src = make_input(tmp_path / "in", {f"{NAMES[3]}.gz": gz(data[:half]) + gz(data[half:])})
    stats = mnist_clean.run(str(src), str(tmp_path / "out.lance"), {})
    assert (stats["test_records"], stats["invalid_records"]) == (10000, 0)


def test_invalid_labels_are_dropped_and_counted(tmp_path: Path) -> None:
    labels = bytearray(raw_bytes(NAMES[3]))
    labels[8 + 0] = 12  # first test label
    labels[8 + 5] = 255
    src = make_input(tmp_path / "in", {f"{NAMES[3]}.gz": gz(bytes(labels))})
    out = tmp_path / "out.lance"
    stats = mnist_clean.run(str(src), str(out), {"limit": 100})
    assert stats["invalid_records"] == 2
    assert (stats["train_records"], stats["test_records"], stats["total_records"]) == (100, 98, 198)
    table = lance.dataset(str(out)).to_table(filter="split = 'test'", columns=["id", "label"])
    ids = table.column("id").to_pylist()
    assert 60000 not in ids and 60005 not in ids and ids[:2] == [60001, 60002]
    assert max(table.column("label").to_pylist()) <= 9


def test_progress_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakekit import progress

    progress_file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV_VAR, str(progress_file))
    mnist_clean.run(str(RAW), str(tmp_path / "out.lance"), {"limit": 10})
    points = progress.Follower(progress_file).poll()
    assert points and points[-1]["records_done"] == points[-1]["records_total"] == 20


def truncated_gzip() -> bytes:
    data = (RAW / f"{NAMES[2]}.gz").read_bytes()
    return data[: len(data) // 2]


def bad_magic() -> bytes:
    data = bytearray(raw_bytes(NAMES[2]))
    data[:4] = struct.pack(">I", 2049)
    return gz(bytes(data))


def count_mismatch() -> bytes:
    data = raw_bytes(NAMES[3])
    # A self-consistent labels file with one label fewer than there are images.
    return gz(struct.pack(">II", 2049, 9999) + data[8:-1])


# Inputs are built lazily, per test, so collection stays instant.
@pytest.mark.parametrize(
    ("replace", "message"),
    [
        pytest.param(
            lambda: {f"{NAMES[2]}.gz": bad_magic()},
            rf"{NAMES[2]}\.gz: bad magic number 2049, expected 2051",
            id="bad-magic",
        ),
        pytest.param(
            lambda: {f"{NAMES[2]}.gz": truncated_gzip()},
            rf"{NAMES[2]}\.gz: corrupt or truncated gzip",
            id="truncated-gzip",
        ),
        pytest.param(
            lambda: {NAMES[2]: raw_bytes(NAMES[2])[:-1000]},
            rf"{NAMES[2]}: truncated: header announces 10000 images",
            id="truncated-plain",
        ),
        pytest.param(
            lambda: {NAMES[2]: raw_bytes(NAMES[2]) + b"\0" * 10},
            rf"{NAMES[2]}: 10 unexpected trailing bytes",
            id="trailing-bytes",
        ),
        pytest.param(
            lambda: {f"{NAMES[3]}.gz": count_mismatch()},
            rf"count mismatch: .*{NAMES[2]}\.gz has 10000 images but .*{NAMES[3]}\.gz has 9999",
            id="count-mismatch",
        ),
        pytest.param(
            lambda: {f"{NAMES[1]}.gz": raw_bytes(NAMES[1])},
            rf"{NAMES[1]}\.gz: not a gzip file",
            id="not-gzip",
        ),
        pytest.param(
            lambda: {f"{NAMES[0]}.gz": gz(struct.pack(">IIII", 2051, 60000, 32, 32))},
            rf"{NAMES[0]}\.gz: images are 32x32, expected 28x28",
            id="wrong-shape",
        ),
    ],
)
def test_corrupt_input_fails_before_writing(
    tmp_path: Path, replace: Callable[[], dict[str, bytes]], message: str
) -> None:
    src = make_input(tmp_path / "in", replace())
    out = tmp_path / "mnist_clean.lance"
    existing_dataset(out)
    with pytest.raises(ValueError, match=message):
        mnist_clean.run(str(src), str(out), {})
    assert_untouched(out)
    assert not list((out / "data").glob("*"))[1:]  # only the previous version's data file


def test_error_while_streaming_aborts_the_write(tmp_path: Path) -> None:
    """A gzip CRC error is only seen at the end of the stream: after the train split was fed
    to Lance. The write must be aborted without a commit."""
    data = bytearray((RAW / f"{NAMES[3]}.gz").read_bytes())
    data[-8] ^= 0xFF  # CRC32 of the gzip trailer; ISIZE (the last 4 bytes) stays right
    src = make_input(tmp_path / "in", {f"{NAMES[3]}.gz": bytes(data)})
    out = tmp_path / "mnist_clean.lance"
    existing_dataset(out)
    with pytest.raises(ValueError, match=rf"{NAMES[3]}\.gz: corrupt file .*CRC"):
        mnist_clean.run(str(src), str(out), {})
    assert_untouched(out)


def test_missing_file(tmp_path: Path) -> None:
    src = make_input(tmp_path / "in")
    (src / f"{NAMES[1]}.gz").unlink()
    with pytest.raises(FileNotFoundError, match=rf"neither {NAMES[1]}\.gz nor {NAMES[1]} in"):
        mnist_clean.run(str(src), str(tmp_path / "out.lance"), {})
    assert not (tmp_path / "out.lance").exists()


@pytest.mark.parametrize(
    "params",
    [{"dtype": "float64"}, {"normalize": "yes"}, {"limit": 0}, {"limit": True}],
)
def test_bad_params(tmp_path: Path, params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=re.escape("params.")):
        mnist_clean.run(str(RAW), str(tmp_path / "out.lance"), params)
