"""The tabular example end to end: the user-style CSV -> csv_clean -> tabular_mlp -> a record
that loads back and predicts. Scripts are imported by file path, as the platform does."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import lance
import numpy as np
import pytest

from lakekit import models, progress

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / "data" / "raw" / "tabular" / "machine_health.csv"
FEATURES = [
    "temperature_c",
    "vibration_mm_s",
    "pressure_kpa",
    "rpm",
    "current_a",
    "voltage_v",
    "humidity_pct",
    "age_days",
]


def load_script(relative: str) -> ModuleType:
    path = ROOT / "scripts" / relative
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


csv_clean = load_script("pipelines/csv_clean.py")
tabular_mlp = load_script("training/tabular_mlp.py")


def complete_rows() -> list[dict[str, str]]:
    """The CSV rows csv_clean must keep, read independently with the csv module."""
    with CSV.open() as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if r["status"].strip() and all(r[f] != "" for f in FEATURES)]


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = str(tmp_path_factory.mktemp("lake") / "machine_health.lance")
    return out, csv_clean.run(str(CSV), out, {})


@pytest.fixture(scope="module")
def trained(
    cleaned: tuple[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    out = str(tmp_path_factory.mktemp("models") / "machine_health_mlp.lance")
    return out, tabular_mlp.run(cleaned[0], out, {"threads": 1})


def test_csv_clean_keeps_complete_rows_and_normalises_labels(
    cleaned: tuple[str, dict[str, Any]],
) -> None:
    path, stats = cleaned
    keep = complete_rows()
    assert (stats["rows_read"], stats["rows_written"]) == (3000, len(keep)) == (3000, 2883)
    assert stats["rows_dropped"] == 117
    assert stats["features"] == FEATURES
    assert stats["classes"] == {"faulty": 408, "ok": 1789, "worn": 686}
    assert stats["train_rows"] + stats["test_rows"] == 2883
    assert 0.15 < stats["test_rows"] / 2883 < 0.25
    ds = lance.dataset(path)
    assert ds.schema.names == ["id", *FEATURES, "label", "split"]
    meta = ds.schema.metadata
    assert json.loads(meta[b"lakekit:features"]) == FEATURES
    assert json.loads(meta[b"lakekit:classes"]) == ["faulty", "ok", "worn"]
    table = ds.to_table()
    assert table.column("id").to_pylist() == [int(r["id"]) for r in keep]
    assert table.column("label").to_pylist() == [r["status"].strip().lower() for r in keep]
    np.testing.assert_allclose(
        table.column("vibration_mm_s").to_numpy(),
        [float(r["vibration_mm_s"]) for r in keep],
        rtol=1e-6,
    )


def test_csv_clean_split_is_stable_and_a_rerun_is_a_new_version(
    cleaned: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = cleaned
    out = tmp_path / "again.lance"
    first = csv_clean.run(str(CSV.parent), str(out), {})  # a directory of CSVs works too
    second = csv_clean.run(str(CSV), str(out), {"test_percent": 0})
    assert (first["version"], second["version"], second["previous_version"]) == (1, 2, 1)
    assert second["test_rows"] == 0
    splits = lance.dataset(str(out), version=1).to_table(columns=["split"])
    assert splits == lance.dataset(path).to_table(columns=["split"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"test_percent": 101}, "test_percent must be an integer in 0..100"),
        ({"labels": "x"}, "unknown params"),
        ({"label": "nope"}, "no label column 'nope'"),
        ({"features": ["rpm", "missing"]}, r"no columns \['missing'\]"),
        ({"features": ["status"]}, "not numeric"),
    ],
)
def test_csv_clean_refuses_bad_params(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        csv_clean.run(str(CSV), str(tmp_path / "out.lance"), params)
    assert not (tmp_path / "out.lance").exists()


def test_csv_clean_missing_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no CSV at"):
        csv_clean.run(str(tmp_path / "none.csv"), str(tmp_path / "out.lance"), {})


def test_tabular_mlp_record_is_servable_with_an_inferred_signature(
    cleaned: tuple[str, dict[str, Any]], trained: tuple[str, dict[str, Any]]
) -> None:
    path, result = trained
    assert result["test_accuracy"] > 0.85 and result["model_version"] == 1
    info = models.read_model_info(path)
    assert info["signature"] == {
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, 8]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 3]}],
    }
    assert info["labels"] == ["faulty", "ok", "worn"]
    assert info["preprocessing"] is None
    assert info["metrics"]["test_accuracy"] == result["test_accuracy"]
    assert info["params"]["features"] == FEATURES and info["params"]["epochs"] == 10
    assert info["source"] == {"path": cleaned[0], "name": "machine_health", "version": 1}
    assert [h["epoch"] for h in info["history"]] == list(range(1, 11))
    assert models.check_model_record(path) is None
    assert models.check_model_record(path, load=True) is None


def test_the_loaded_model_predicts_raw_csv_features(
    cleaned: tuple[str, dict[str, Any]], trained: tuple[str, dict[str, Any]]
) -> None:
    """Standardisation is inside the network: raw feature values in, same accuracy out."""
    path, result = trained
    test = lance.dataset(cleaned[0]).to_table(filter="split = 'test'")
    x = np.stack([test.column(f).to_numpy() for f in FEATURES], axis=1)
    loaded = models.load_model(path)
    logits = loaded.infer({"features": x})["logits"]
    predicted = [loaded.labels[i] for i in logits.argmax(1)]
    accuracy = np.mean(np.array(predicted) == np.array(test.column("label").to_pylist()))
    assert accuracy == pytest.approx(result["test_accuracy"], abs=1e-6)


def test_tabular_mlp_reports_progress_and_refuses_bad_params(
    cleaned: tuple[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    progress_file = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV_VAR, str(progress_file))
    out = tmp_path / "m.lance"
    tabular_mlp.run(cleaned[0], str(out), {"epochs": 2, "threads": 1})
    points = progress.Follower(progress_file).poll()
    assert [p["epoch"] for p in points] == [1, 2] and points[-1]["epochs"] == 2
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        tabular_mlp.run(cleaned[0], str(tmp_path / "n.lance"), {"epochs": 0})
    with pytest.raises(ValueError, match="unknown params"):
        tabular_mlp.run(cleaned[0], str(tmp_path / "n.lance"), {"layers": 3})
    with pytest.raises(ValueError, match="features must be a list of column names"):
        tabular_mlp.run(cleaned[0], str(tmp_path / "n.lance"), {"features": [{"a": 1}]})
    with pytest.raises(ValueError, match=r"dataset lacks columns \['nope'\]"):
        tabular_mlp.run(cleaned[0], str(tmp_path / "n.lance"), {"features": ["nope"]})
    assert not (tmp_path / "n.lance").exists()
