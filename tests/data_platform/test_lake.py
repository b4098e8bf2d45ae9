"""The lake's own housekeeping: versions pinned by models survive cleanup; task records compact."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from data_platform.store import Lake, simple_schema
from tests.lakekit.test_modelrec import make_module, write


def overwrite(path: str, value: int) -> int:
    mode = "overwrite" if Path(path).exists() else "create"
    return lance.write_dataset(pa.table({"x": [value]}), path, mode=mode).version


def lake_at(root: Path, as_uri: bool) -> Lake:
    """The same lake addressed by a path or by a file:// URI."""
    return Lake(root.as_uri() if as_uri else str(root))


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_model_pinned_version_survives_cleanup_and_unpins_on_delete(tmp_path: Path, as_uri):
    lake = lake_at(tmp_path / "lake", as_uri)
    data = lake.path_of("datasets", "digits")
    for value in range(3):
        pinned = overwrite(data, value)  # versions 1..3; the model trains on 3
    model = lake.path_of("models", "m1")
    write(model, make_module(), source={"path": str(data), "name": "digits", "version": pinned})
    tag = lake.pin_model_source(model)
    assert tag == "model-m1-v1"
    for value in range(3, 5):
        overwrite(data, value)  # versions 4, 5

    removed = lake.clean_old_versions(timedelta(0))
    assert removed["datasets/digits"] == 3  # 1, 2, 4 went; 3 is pinned, 5 is current
    versions = [v.version for v in lake.dataset_versions("digits")]
    assert versions == [3, 5]
    assert lance.dataset(str(data), version=3).to_table().column("x").to_pylist() == [2]
    assert lake.pinned_versions("digits") == {"model-m1-v1": 3}

    lake.delete_model("m1")
    assert lake.pinned_versions("digits") == {}
    lake.clean_old_versions(timedelta(0))
    assert [v.version for v in lake.dataset_versions("digits")] == [5]


def test_task_records_compact_into_few_versions(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
    for i in range(30):
        lake.tasks.upsert({"id": f"t{i % 5}", "n": i})
    assert lance.dataset(lake.tasks.path).version == 30
    lake.tasks.compact()
    ds = lance.dataset(lake.tasks.path)
    assert len(ds.versions()) == 1 and len(ds.get_fragments()) == 1
    records = {r["id"]: r["n"] for r in lake.tasks.load_all()}
    assert records == {"t0": 25, "t1": 26, "t2": 27, "t3": 28, "t4": 29}


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_a_dataset_without_a_committed_version_is_not_listed(tmp_path: Path, as_uri):
    lake = lake_at(tmp_path / "lake", as_uri)
    assert lake.root == str(tmp_path / "lake")
    (tmp_path / "lake" / "datasets" / "half.lance" / "data").mkdir(parents=True)
    overwrite(lake.path_of("datasets", "whole"), 1)
    (tmp_path / "lake" / "datasets" / "not a name.lance").mkdir()  # not ours: not listed
    assert [d.id for d in lake.list_datasets()[0]] == ["whole"]
    lake.delete_dataset("whole")
    assert (
        lake.list_datasets() == ([], None) and not (tmp_path / "lake/datasets/whole.lance").exists()
    )


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_roll_back_restores_or_removes_by_uri(tmp_path: Path, as_uri):
    lake = lake_at(tmp_path / "lake", as_uri)
    uri = lake.path_of("datasets", "d")
    first = overwrite(uri, 1)
    overwrite(uri, 2)
    assert lake.roll_back(uri, first) == f"restored version {first}"
    assert lance.dataset(uri).to_table().column("x").to_pylist() == [1]
    assert lake.roll_back(uri, None) == "removed partial output"
    assert lake.version_of(uri) is None and lake.roll_back(uri, None) is None


@pytest.mark.parametrize(
    ("arrow", "simple"),
    [
        (pa.int64(), "int64"),
        (pa.large_string(), "string"),
        (pa.binary(), "binary"),
        (pa.float32(), "float32"),
        (pa.list_(pa.float64(), 784), "fixed_size_list<float64>[784]"),
    ],
)
def test_schema_uses_simple_type_names(arrow, simple):
    assert simple_schema(pa.schema([("c", arrow)])) == {"c": simple}
