"""The lake's own housekeeping: versions pinned by models survive cleanup; task records compact."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from data_platform.store import Lake, simple_schema
from tests.lakekit.test_modelrec import make_module, write


def overwrite(path: Path, value: int) -> int:
    mode = "overwrite" if path.exists() else "create"
    return lance.write_dataset(pa.table({"x": [value]}), str(path), mode=mode).version


def test_model_pinned_version_survives_cleanup_and_unpins_on_delete(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
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


def test_a_dataset_without_a_committed_version_is_not_listed(tmp_path: Path):
    lake = Lake(tmp_path / "lake")
    (lake.root / "datasets" / "half.lance" / "data").mkdir(parents=True)
    overwrite(lake.path_of("datasets", "whole"), 1)
    assert [d.id for d in lake.list_datasets()] == ["whole"]


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
