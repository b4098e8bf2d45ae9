"""The wire schemas: what requests may carry, and what records answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from aip.records import Dataset as SdkDataset
from lakeapi.schemas import PARAMS_MAX_DEPTH, Dataset, JobCreate, TaskCreate


def job(params: Any) -> dict[str, Any]:
    return {"name": "t", "input": "raw", "script": "s.py", "output": "o", "params": params}


def nested(depth: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    inner = params
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return params


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_params_are_refused(text: str):
    body = json.dumps(job({})).replace('"params": {}', f'"params": {{"lr": {text}}}')
    with pytest.raises(ValidationError, match="non-finite"):
        JobCreate.model_validate_json(body)
    with pytest.raises(ValidationError, match="non-finite"):
        JobCreate.model_validate(json.loads(body))  # json.loads reads them as floats too


def test_params_nested_beyond_the_limit_are_refused_at_the_limit_accepted():
    assert JobCreate.model_validate(job(nested(PARAMS_MAX_DEPTH))).params
    with pytest.raises(ValidationError, match=f"deeper than {PARAMS_MAX_DEPTH}"):
        JobCreate.model_validate(job(nested(PARAMS_MAX_DEPTH + 1)))
    with pytest.raises(ValidationError, match="deeper"):
        TaskCreate.model_validate({"script": "s.py", "output": "datasets/x", "params": nested(300)})


def test_numbers_out_of_range_are_refused_and_ordinary_params_pass():
    with pytest.raises(ValidationError, match="out of range"):
        JobCreate.model_validate(job({"epochs": 1e308}))
    with pytest.raises(ValidationError, match="out of range"):
        JobCreate.model_validate(job({"n": [1, 2**70]}))
    params = {"lr": 1e-3, "epochs": 5, "layers": [64, 32], "opt": {"name": "adam", "b": True}}
    assert JobCreate.model_validate(job(params)).params == params


def test_a_dataset_answers_with_the_designs_field_names_too():
    dataset = Dataset(
        id="mnist",
        path="/lake/datasets/mnist.lance",
        schema={"label": "int64"},
        num_rows=70000,
        size_bytes=52428800,
        version=3,
    )
    wire = dataset.model_dump(mode="json", by_alias=True)
    assert wire["storage_path"] == "/lake/datasets/mnist.lance"
    assert wire["stats"] == {"total_records": 70000, "size_bytes": 52428800}
    assert wire["schema"] == {"label": "int64"}
    # The SDK reads the same answer, keeping what it sent.
    sdk = SdkDataset.from_raw(wire)
    assert sdk.stats.total_records == 70000 and sdk.raw == wire
