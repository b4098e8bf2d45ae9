"""Clean a user's CSV of numeric features and a class label into a Lance dataset, with Daft.

Contract: ``run(input_path, output_path, params) -> stats``. ``input_path`` is a CSV file (or a
directory of them, read as one table) with a header row; ``output_path`` is a Lance dataset, an
existing one gets a new version. The example input is ``data/raw/tabular/machine_health.csv``.

Params (all optional):

- ``label`` (str, default ``"status"``): the class label column.
- ``id`` (str, default ``"id"``): an integer row id column; when the CSV has none, rows are
  numbered from 0 in file order.
- ``features`` (list of str): the feature columns, in the order the model will take them
  (default: every numeric column but the id, in file order).
- ``test_percent`` (int 0..100, default 20): rows put in split ``test``, chosen by a hash of the
  id (stable: the same row lands in the same split on every run, and rows added later do not
  move the others).

Cleaning: labels are stripped and lower-cased (``" OK"`` and ``"Ok"`` are ``ok``); rows with an
empty label or an empty feature are dropped and counted. Output schema::

    id        int64     the row id
    <feature> float32   one column per feature, in order
    label     string    the cleaned class label
    split     string    "train" or "test"

The schema metadata tells a training script what it needs without params: ``lakekit:features``
(JSON list, the column order), ``lakekit:label`` (``"label"``) and ``lakekit:classes`` (JSON
list, sorted). Object storage works through the storage options the platform passes
(``lakekit.datasets``): Daft reads the CSV with them, Lance writes with them.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

# The platform runs scripts without network: skip Daft's analytics ping (a daemon thread).
os.environ.setdefault("DAFT_ANALYTICS_ENABLED", "0")

import daft
import daft.runners
import lance
import pyarrow.compute as pc
from daft import DataType, col, lit

from lakekit import datasets
from lakekit.progress import report

DEFAULTS: dict[str, Any] = {"label": "status", "id": "id", "features": None, "test_percent": 20}
_HASH_SEED = 0  # part of the split's definition: changing it reshuffles every dataset


def parse_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``params`` over ``DEFAULTS``.

    Raises:
        ValueError: an unknown name or a bad value.
    """
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown params {unknown}; known: {sorted(DEFAULTS)}")
    for name in ("label", "id"):
        if not isinstance(merged[name], str) or not merged[name]:
            raise ValueError(f"params.{name} must be a column name")
    features = merged["features"]
    if features is not None and (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) and f for f in features)
        or len(set(features)) != len(features)
    ):
        raise ValueError("params.features must be a non-empty list of distinct column names")
    percent = merged["test_percent"]
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"params.test_percent must be an integer in 0..100, got {percent!r}")
    return merged


def use_native_runner() -> None:
    """Daft's in-process runner unless one was chosen (else Daft imports ray to look for one)."""
    get_runner = getattr(daft.runners, "_get_runner", None)
    if not os.environ.get("DAFT_RUNNER") and get_runner is not None and get_runner() is None:
        daft.set_runner_native()


def csv_source(input_path: str) -> str:
    """The path or glob Daft reads: the file itself, or every ``*.csv`` in a directory."""
    if "://" in input_path:
        return input_path
    if os.path.isdir(input_path):
        if not any(name.endswith(".csv") for name in os.listdir(input_path)):
            raise FileNotFoundError(f"no .csv file in {input_path}")
        return os.path.join(input_path, "*.csv")
    if not os.path.isfile(input_path):
        raise FileNotFoundError(f"no CSV at {input_path}")
    return input_path


def pick_features(schema: daft.Schema, p: dict[str, Any]) -> list[str]:
    """The feature columns: those asked for (checked to be numeric), or every numeric one."""
    kinds = {field.name: field.dtype for field in schema}
    if p["label"] not in kinds:
        raise ValueError(f"the CSV has no label column {p['label']!r}; columns: {list(kinds)}")
    numeric = [n for n, t in kinds.items() if t.is_numeric() and n not in (p["id"], p["label"])]
    if p["features"] is None:
        if not numeric:
            raise ValueError("the CSV has no numeric feature column")
        return numeric
    missing = [f for f in p["features"] if f not in kinds]
    if missing:
        raise ValueError(f"the CSV has no columns {missing}; columns: {list(kinds)}")
    wrong = [f for f in p["features"] if f not in numeric]
    if wrong:
        raise ValueError(f"feature columns {wrong} are not numeric (or are the id or label)")
    return list(p["features"])


def clean(df: daft.DataFrame, features: list[str], p: dict[str, Any]) -> daft.DataFrame:
    """The Daft plan: clean labels, drop incomplete rows, cast, derive the split."""
    has_id = p["id"] in df.column_names
    if not has_id:
        df = df.with_column(p["id"], daft.functions.monotonically_increasing_id())
    label = col(p["label"]).cast(DataType.string()).strip().lower()
    complete = label.not_null() & (label != lit(""))
    for name in features:
        complete = complete & col(name).not_null()
    bucket = col("id").hash(seed=_HASH_SEED) % lit(100)
    return (
        df.where(complete)
        .select(
            col(p["id"]).cast(DataType.int64()).alias("id"),
            *(col(name).cast(DataType.float32()) for name in features),
            label.alias("label"),
        )
        .with_column(
            "split",
            daft.functions.when(bucket < lit(p["test_percent"]), lit("test")).otherwise(
                lit("train")
            ),
        )
        .sort("id")
    )


def run(input_path: str, output_path: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Clean the CSV at ``input_path`` into the Lance dataset at ``output_path``.

    Returns counts (``rows_read``, ``rows_written``, ``rows_dropped``, per split and per
    class), the features, and the new and previous dataset versions.
    """
    started = time.perf_counter()
    p = parse_params(params)
    use_native_runner()
    options = datasets.storage_options()
    source = csv_source(input_path)
    raw = daft.read_csv(source, io_config=datasets.daft_io_config(options))
    features = pick_features(raw.schema(), p)
    rows_read = raw.count_rows()
    report(step="read", rows_read=rows_read)
    table = clean(raw, features, p).to_arrow()
    if table.num_rows == 0:
        raise ValueError(f"no complete row in {input_path}: every row lacks a label or a feature")
    ids = table.column("id")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        raise ValueError(f"column {p['id']!r} has duplicate ids")
    classes = sorted(set(table.column("label").to_pylist()))
    metadata = {
        "lakekit:features": json.dumps(features),
        "lakekit:label": "label",
        "lakekit:classes": json.dumps(classes),
        "source": os.path.basename(input_path.rstrip("/")),
    }
    table = table.replace_schema_metadata(metadata)
    try:
        previous: int | None = datasets.open_dataset(output_path, storage_options=options).version
    except datasets.DatasetNotFound:
        previous = None
    ds = lance.write_dataset(
        table,
        output_path,
        mode="create" if previous is None else "overwrite",
        storage_options=options,
    )
    report(step="written", rows_written=table.num_rows)
    splits = table.column("split").to_pylist()
    labels = table.column("label").to_pylist()
    return {
        "rows_read": rows_read,
        "rows_written": table.num_rows,
        "rows_dropped": rows_read - table.num_rows,
        "train_rows": splits.count("train"),
        "test_rows": splits.count("test"),
        "classes": {name: labels.count(name) for name in classes},
        "features": features,
        "version": ds.version,
        "previous_version": previous,
        "seconds": round(time.perf_counter() - started, 3),
    }
