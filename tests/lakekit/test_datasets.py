"""lakekit.datasets on real Lance datasets; Daft reads them with daft_io_config()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from lakeapi.errors import DatasetNotFound
from lakekit import datasets


@pytest.fixture
def table_path(tmp_path: Path) -> str:
    path = str(tmp_path / "people.lance")
    lance.write_dataset(
        pa.table({"id": [1, 2, 3], "age": [30, 40, 50], "split": ["a", "b", "a"]}), path
    )
    lance.write_dataset(pa.table({"id": [4], "age": [60], "split": ["b"]}), path, mode="append")
    return path


def test_open_and_read_with_columns_filter_and_version(table_path: str) -> None:
    ds = datasets.open_dataset(table_path)
    assert ds.version == 2 and ds.count_rows() == 4
    assert datasets.open_dataset(table_path, version=1).count_rows() == 3
    assert datasets.open_dataset(f"file://{table_path}").count_rows() == 4
    table = datasets.read_table(table_path, columns=["id"], filter="split = 'a' AND age > 35")
    assert table.column_names == ["id"] and table.column("id").to_pylist() == [3]
    assert datasets.read_table(ds, limit=2).num_rows == 2
    assert datasets.source_of(ds) == {"path": ds.uri, "name": "people", "version": 2}


def test_errors_say_what_is_wrong(table_path: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="no dataset at"):
        datasets.open_dataset(tmp_path / "missing.lance")
    with pytest.raises(DatasetNotFound, match="no version 9"):
        datasets.open_dataset(table_path, version=9)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="is not a Lance dataset"):
        datasets.open_dataset(tmp_path / "junk")
    with pytest.raises(ValueError, match=r"has no columns \['nope'\]"):
        datasets.read_table(table_path, columns=["nope"])
    with pytest.raises(ValueError, match=r"cannot read .* with filter"):
        datasets.read_table(table_path, filter="age >>> 3")


def test_daft_options_for_an_http_endpoint() -> None:
    kwargs = datasets.daft_s3_kwargs(
        {
            "aws_access_key_id": "AK",
            "secret_access_key": "SK",
            "aws_endpoint": "http://127.0.0.1:9000",
            "region": "us-east-1",
            "allow_http": "true",
            "virtual_hosted_style_request": "false",
            "something_else": "ignored",
        }
    )
    assert kwargs == {
        "key_id": "AK",
        "access_key": "SK",
        "endpoint_url": "http://127.0.0.1:9000",
        "region_name": "us-east-1",
        "force_virtual_addressing": False,
        "use_ssl": False,
    }
    assert "use_ssl" not in datasets.daft_s3_kwargs({"endpoint": "https://s3.example.com"})
    config = datasets.daft_io_config({"aws_endpoint": "http://127.0.0.1:9000"})
    assert config.s3.endpoint_url == "http://127.0.0.1:9000" and config.s3.use_ssl is False


def test_daft_reads_the_dataset_with_the_environments_config(
    table_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, "{}")
    code = (
        "import os, sys, daft; from lakekit import datasets\n"
        "daft.set_runner_native()\n"
        f"df = daft.read_lance({table_path!r}, io_config=datasets.daft_io_config())\n"
        "assert sorted(df.to_pydict()['id']) == [1, 2, 3, 4]\n"
    )
    env = {**os.environ, "DAFT_ANALYTICS_ENABLED": "0"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


def test_the_runtime_imports_neither_fastapi_nor_torch_nor_daft() -> None:
    code = (
        "import sys\n"
        "import lakekit, lakekit.progress, lakekit.models, lakekit.datasets\n"
        "import lakekit.signature, lakekit.modelrec, lakekit.images\n"
        "from lakekit import models, datasets, progress\n"
        "heavy = sorted(m for m in ('fastapi', 'starlette', 'torch', 'daft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_data_platform_imports_nothing_of_the_ai_platform() -> None:
    """The Data Platform's search decodes images with the runtime's codec, not the AI
    Platform's: it runs where only the Data Platform is installed."""
    code = (
        "import sys\n"
        "import data_platform.app, data_platform.search\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'ai_platform']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
