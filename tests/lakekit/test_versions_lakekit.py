"""The script runtime's side of refs and write modes: pinned URIs open their version, and
the write helpers honour the mode the platform hands over."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakeapi.errors import AlreadyExists, DatasetNotFound, ModelNotFound
from lakeapi.names import pinned_uri
from lakekit import datasets, modelrec
from lakekit.taskenv import WRITE_MODE_ENV
from tests.lakekit.test_modelrec import make_module, write


def rows(values: list[int]) -> pa.Table:
    return pa.table({"x": values})


def test_a_pinned_uri_opens_its_version_and_records_the_plain_uri(tmp_path: Path):
    path = str(tmp_path / "d.lance")
    datasets.write_dataset(rows([1, 2]), path)
    datasets.write_dataset(rows([3]), path)
    ds = datasets.open_dataset(pinned_uri(path, 1))
    assert ds.version == 1 and datasets.read_table(ds).column("x").to_pylist() == [1, 2]
    assert datasets.read_table(pinned_uri(path, 1)).num_rows == 2
    assert datasets.read_table(path).column("x").to_pylist() == [3]
    assert datasets.source_of(ds) == {"path": ds.uri, "name": "d", "version": 1}
    assert "?" not in ds.uri and datasets.base_uri(pinned_uri(path, 1)) == path
    with pytest.raises(DatasetNotFound, match="no version 7"):
        datasets.open_dataset(pinned_uri(path, 7))


def test_write_dataset_honours_the_task_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = str(tmp_path / "d.lance")
    monkeypatch.setenv(WRITE_MODE_ENV, "append")
    assert datasets.write_dataset(rows([1]), path).count_rows() == 1  # nothing yet: created
    assert datasets.write_dataset(rows([2, 3]), path).count_rows() == 3
    monkeypatch.setenv(WRITE_MODE_ENV, "create")
    with pytest.raises(AlreadyExists):
        datasets.write_dataset(rows([4]), path)
    assert datasets.write_dataset(rows([4]), path, mode="overwrite").count_rows() == 1
    monkeypatch.setenv(WRITE_MODE_ENV, "replace")
    with pytest.raises(ValueError, match="use create, overwrite or append"):
        datasets.write_dataset(rows([5]), path)


def test_model_records_open_pinned_and_refuse_create_and_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "m.lance"
    write(path, make_module(0), metrics={"seed": 0})
    write(path, make_module(1), metrics={"seed": 1})
    info = modelrec.read_model_info(pinned_uri(str(path), 1))
    assert info["version"] == 1 and info["metrics"] == {"seed": 0}
    assert info["path"] == str(path) and info["provenance"] == {}
    assert modelrec.model_name(pinned_uri(str(path), 1)) == "m"
    with pytest.raises(ModelNotFound):
        modelrec.read_model_info(pinned_uri(str(path), 9))
    monkeypatch.setenv(WRITE_MODE_ENV, "create")
    with pytest.raises(AlreadyExists):
        write(path, make_module(2))
    monkeypatch.setenv(WRITE_MODE_ENV, "append")
    with pytest.raises(ValueError, match="cannot be appended"):
        write(path, make_module(2))
    assert modelrec.read_model_info(path)["version"] == 2
