"""The platform's batch-inference script: a model's outputs as new columns of a dataset.

Run as a task of kind ``batch_inference`` (input ``models/NAME``, output ``datasets/NAME``):
``prediction`` (int64), ``confidence`` (float32) and ``embedding`` (fixed-size list of
float32) are added with ``LanceDataset.add_columns``: one new data file per fragment beside
the existing ones, which are neither read beyond the input column nor rewritten. The columns
land in one commit, so a cancelled or failed run leaves the previous version as it was.

Fragments are processed ``batch_size`` rows at a time: memory is bounded by one batch. Each
new field's metadata names the model, its version and the layer the embedding came from.
"""

from __future__ import annotations

import time
from typing import Any

import lance
import numpy as np
import pyarrow as pa

from lakekit import datasets, progress
from lakekit.embedding import EmbeddingModel, model_inputs, predictions
from lakekit.modelrec import model_name

MODEL_KEY = b"lakeops:model"
VERSION_KEY = b"lakeops:model_version"
LAYER_KEY = b"lakeops:layer"
PATH_KEY = b"lakeops:model_path"
REPORT_EVERY_SECONDS = 1.0


def column_names(prefix: str = "") -> tuple[str, str, str]:
    return f"{prefix}prediction", f"{prefix}confidence", f"{prefix}embedding"


def run(input_path: str, output_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """Add the model at ``input_path``'s outputs to the dataset at ``output_path``.

    Params: model_version, input_column ("image"), filter, layer, prefix, batch_size, device.
    """
    options = datasets.storage_options()
    model = EmbeddingModel(
        input_path,
        params.get("model_version"),
        params.get("layer"),
        params.get("device", "cpu"),
        options,
    )
    ds = datasets.open_dataset(output_path, storage_options=options)
    column = str(params.get("input_column", "image"))
    if column not in ds.schema.names:
        raise ValueError(f"dataset has no column {column!r}; it has {ds.schema.names}")
    names = column_names(str(params.get("prefix", "")))
    present = [n for n in names if n in ds.schema.names]
    if present:  # a rerun replaces them; dropping columns rewrites no data file
        ds.drop_columns(present)
        ds = datasets.open_dataset(output_path, storage_options=options)
    wanted = _matching(ds, params.get("filter"))
    total = ds.count_rows() if wanted is None else len(wanted)
    field_meta = ds.schema.field(column).metadata
    meta = {
        MODEL_KEY: model_name(input_path).encode(),
        VERSION_KEY: str(model.version).encode(),
        LAYER_KEY: model.layer.encode(),
        PATH_KEY: input_path.encode(),
    }
    state = {"rows": 0, "done": 0, "dim": 0, "reported": 0.0, "seconds": 0.0}
    labels = "label" if "label" in ds.schema.names else None
    correct = [0, 0]  # right, scored
    started = time.perf_counter()

    def schema_for(dim: int) -> pa.Schema:
        return pa.schema(
            [
                pa.field(names[0], pa.int64(), metadata=meta),
                pa.field(names[1], pa.float32(), metadata=meta),
                pa.field(names[2], pa.list_(pa.float32(), dim), metadata=meta),
            ]
        )

    # The embedding's width is only known after a pass: one row of the first fragment tells.
    probe = ds.to_table(columns=[column], limit=1)
    _, emb = model.forward(model_inputs(probe.column(column), field_meta, model.info))
    dim = int(emb.shape[1])
    schema = schema_for(dim)

    @lance.batch_udf(output_schema=schema)
    def infer(batch: pa.RecordBatch) -> pa.RecordBatch:
        n = batch.num_rows
        mask = (
            np.ones(n, bool)
            if wanted is None
            else np.isin(batch.column("_rowid").to_numpy(), wanted, assume_unique=True)
        )
        pred = np.zeros(n, np.int64)
        conf = np.zeros(n, np.float32)
        embs = np.zeros((n, dim), np.float32)
        if mask.any():
            picked = batch.column(column).filter(pa.array(mask))
            t0 = time.perf_counter()
            logits, emb = model.forward(model_inputs(picked, field_meta, model.info))
            state["seconds"] += time.perf_counter() - t0
            best, confidence = predictions(logits)
            pred[mask], conf[mask], embs[mask] = best, confidence, emb
            if labels is not None:
                truth = batch.column(labels).to_numpy()[mask]
                correct[0] += int((truth == best).sum())
                correct[1] += len(truth)
        nulls = None if mask.all() else ~mask
        flat = pa.array(embs.reshape(-1), pa.float32())
        arrays = [
            pa.array(pred, pa.int64(), mask=nulls),
            pa.array(conf, pa.float32(), mask=nulls),
            pa.FixedSizeListArray.from_arrays(
                flat, dim, mask=None if nulls is None else pa.array(nulls)
            ),
        ]
        state["rows"] += n
        state["done"] += int(mask.sum())
        now = time.perf_counter()
        if now - state["reported"] > REPORT_EVERY_SECONDS:
            state["reported"] = now
            progress.report(rows=state["done"], total=total, fraction=state["done"] / max(total, 1))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    bytes_before = _data_bytes(ds)
    read = [column, "_rowid"] + ([labels] if labels else [])
    ds.add_columns(infer, read_columns=read, batch_size=int(params.get("batch_size", 1024)))
    after = datasets.open_dataset(output_path, storage_options=options)
    seconds = time.perf_counter() - started
    progress.report(rows=state["done"], total=total, fraction=1.0)
    result: dict[str, Any] = {
        "rows": state["done"],
        "rows_scanned": state["rows"],
        "columns": list(names),
        "embedding_dim": dim,
        "model": model_name(input_path),
        "model_version": model.version,
        "layer": model.layer,
        "dataset_version": after.version,
        "bytes_written": _data_bytes(after) - bytes_before,
        "dataset_bytes": bytes_before,
        "seconds": round(seconds, 3),
        "forward_seconds": round(state["seconds"], 3),
        "rows_per_second": round(state["done"] / seconds, 1) if seconds else None,
    }
    if correct[1]:
        result["accuracy"] = correct[0] / correct[1]
    return result


def _matching(ds: lance.LanceDataset, where: str | None) -> np.ndarray | None:
    """Sorted row ids of the rows ``where`` selects; None: every row."""
    if not where:
        return None
    try:
        table = ds.to_table(columns=[], filter=where, with_row_id=True)
    except (ValueError, OSError) as exc:
        raise ValueError(f"bad filter {where!r}: {exc}") from exc
    return np.sort(table.column("_rowid").to_numpy())


def _data_bytes(ds: lance.LanceDataset) -> int:
    return sum(f.file_size_bytes or 0 for frag in ds.get_fragments() for f in frag.data_files())
