"""The tabular example on a real S3 endpoint (SeaweedFS), reached only through the storage
options the platform passes in LAKEKIT_STORAGE_OPTIONS: Daft reads the CSV from the bucket,
Lance writes the dataset and the model record there, and the record checks and loads.

Uses the Level 3 tests' S3 endpoint (``tests/level3/s3.py``, ``lakestack.local_s3``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lakekit import datasets, models
from lakestack.local_s3 import unavailable
from tests.level3 import s3
from tests.scripts.test_tabular import CSV, csv_clean, tabular_mlp


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if (why := unavailable()) is not None:
        pytest.skip(why)
    server = s3.SeaweedS3(tmp_path_factory.mktemp("s3"))
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


def test_csv_to_model_on_s3_with_the_environments_options(
    bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, json.dumps(bucket.storage_options))
    bucket.request("PUT", "kit/raw/machine_health.csv", CSV.read_bytes()).raise_for_status()
    data, model = bucket.uri("kit/datasets/mh.lance"), bucket.uri("kit/models/mh.lance")

    stats = csv_clean.run(bucket.uri("kit/raw/machine_health.csv"), data, {})
    assert (stats["rows_read"], stats["rows_written"], stats["version"]) == (3000, 2883, 1)
    assert datasets.open_dataset(data).count_rows() == 2883
    result = tabular_mlp.run(data, model, {"epochs": 2, "threads": 1})
    assert result["test_accuracy"] > 0.85

    options = bucket.storage_options
    assert models.check_model_record(model, options, load=True) is None
    info = models.read_model_info(model, storage_options=options)
    assert info["source"] == {"path": data, "name": "mh", "version": 1}
    loaded = models.load_model(model, storage_options=options)
    assert loaded.signature["inputs"][0]["shape"] == [-1, 8]
    assert tabular_mlp.run(data, model, {"epochs": 1, "threads": 1})["model_version"] == 2

    import daft

    assert daft.read_lance(data, io_config=datasets.daft_io_config()).count_rows() == 2883


def test_nothing_at_an_s3_uri_is_said_plainly(bucket: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, json.dumps(bucket.storage_options))
    problem = models.check_model_record(bucket.uri("kit/models/none.lance"), bucket.storage_options)
    assert problem is not None and problem.startswith("no model at s3://")
    with pytest.raises(datasets.DatasetNotFound, match="no dataset at s3://"):
        datasets.open_dataset(bucket.uri("kit/datasets/none.lance"))
