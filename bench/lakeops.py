"""Lake operations: batch inference into new columns, similar-example search, lineage.

- Batch inference: the platform's ``batch_inference`` script (``lakekit.batch_inference.run``,
  run here directly on a copy of the MNIST dataset) writing prediction, confidence and a
  128-float embedding for all rows, in images/s, against the same model's forward pass alone
  over the same rows already decoded in memory (batches of 1024, same threads). Bytes: what
  the run added (new data files only) against the dataset's data files before it.
- Search: the Data Platform's search code (``data_platform.search.Searcher``, in process:
  the HTTP hop is the serving area's subject) against LanceDB's own query on the same table,
  flat (no index) and then with an IVF_PQ index, same k, same nprobes; p50/p99 latency and
  queries/s ratio.
- Lineage: ``GET /api/v1/models/{model}/lineage`` through the AI Platform, when this run
  trained a model through the platform; otherwise skipped.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import lance
import numpy as np

from bench.context import AreaResult, Context
from bench.lab import REPO
from bench.report import SKIP, Row, Target
from bench.stats import median, percentile
from bench.storage import dataset_for

FORWARD_RATIO = Target("ratio", ">=", 0.8, ">= 0.8x forward alone")
SEARCH_QPS = Target("ratio", ">=", 0.9, ">= 0.9x LanceDB")
BATCH = 1024
K = 10
NPROBES = 20
# The columns both sides return: the same query on both (our default adds the batch
# inference's prediction and confidence, which live in other data files: a bigger read).
COLUMNS = ["id", "label", "split"]
# ``_distance`` named, as ours does: LanceDB then logs no deprecation warning on every query.
THEIR_COLUMNS = [*COLUMNS, "_distance"]


def _model(ctx: Context, dataset: str) -> tuple[str, str]:
    """A model record: the one this run trained through the platform, or a short CNN."""
    if "model" in ctx.artifacts:
        return str(ctx.lab.model_path(ctx.artifacts["model"])), "trained through the platform"
    out = ctx.lab.root / "lakeops" / "cnn.lance"
    if not out.exists():
        sys.path.insert(0, str(REPO / "scripts" / "training"))
        try:
            import mnist_cnn
        finally:
            sys.path.pop(0)
        mnist_cnn.run(dataset, str(out), {"epochs": 1, "limit": 3000, "seed": 1})
    return str(out), "mnist_cnn, 1 epoch on 3000 rows, trained directly"


def _forward_alone(model_path: str, dataset: str) -> float:
    """Seconds of the model's forward passes over every row, inputs decoded beforehand."""
    from lakekit.embedding import EmbeddingModel, model_inputs

    model = EmbeddingModel(model_path)
    ds = lance.dataset(dataset)
    table = ds.to_table(columns=["image"])
    x = model_inputs(table.column("image"), ds.schema.field("image").metadata, model.info)
    started = time.perf_counter()
    for start in range(0, len(x), BATCH):
        model.forward(x[start : start + BATCH])
    return time.perf_counter() - started


def _latencies(ours: Any, theirs: Any, vectors: np.ndarray) -> tuple[list[float], list[float]]:
    """Each query by both, one after the other: on a shared machine a burst of load then
    slows both sides alike instead of whichever ran during it."""
    times: tuple[list[float], list[float]] = ([], [])
    for vector in vectors:
        for query, into in ((ours, times[0]), (theirs, times[1])):
            started = time.perf_counter()
            query(vector)
            into.append(time.perf_counter() - started)
    return times


def _search_rows(name: str, ours: list[float], theirs: list[float]) -> list[Row]:
    qps, base_qps = len(ours) / sum(ours), len(theirs) / sum(theirs)
    ms = 1000.0
    return [
        Row(
            "lakeops",
            f"search {name}: queries/s",
            "q/s",
            qps,
            baseline=base_qps,
            baseline_label="LanceDB",
            ratio=qps / base_qps,
            target=SEARCH_QPS,
        ),
        Row(
            "lakeops",
            f"search {name}: p50 / p99 latency",
            "ms",
            median(ours) * ms,
            baseline=median(theirs) * ms,
            baseline_label="LanceDB p50",
            note=f"p99 {percentile(ours, 99) * ms:.2f} ms vs LanceDB "
            f"{percentile(theirs, 99) * ms:.2f} ms",
        ),
    ]


def run(ctx: Context) -> AreaResult:
    import lancedb

    from data_platform.search import Searcher
    from data_platform.store import Lake
    from lakeapi.lakeops import IndexCreate, SearchCreate
    from lakekit import batch_inference

    source, origin = dataset_for(ctx)
    lake = Lake(ctx.lab.root / "lakeops" / "lake")
    copy = Path(lake.path_of("datasets", "mnist"))
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    model_path, model_origin = _model(ctx, str(copy))

    result = batch_inference.run(model_path, str(copy), {"batch_size": BATCH})
    forward = _forward_alone(model_path, str(copy))
    rows_done = result["rows"]
    rate, bare_rate = rows_done / result["seconds"], rows_done / forward
    rows = [
        Row(
            "lakeops",
            "batch inference into new columns",
            "img/s",
            rate,
            baseline=bare_rate,
            baseline_label="forward pass alone",
            ratio=rate / bare_rate,
            target=FORWARD_RATIO,
            note=f"{rows_done} rows, embedding {result['embedding_dim']} floats",
        ),
        Row(
            "lakeops",
            "bytes written vs the dataset's data files",
            "MB",
            result["bytes_written"] / 1e6,
            baseline=result["dataset_bytes"] / 1e6,
            baseline_label="dataset before",
            ratio=result["bytes_written"] / result["dataset_bytes"],
            note="new columns only; no existing data file rewritten",
        ),
    ]

    searcher = Searcher(lake)
    table = lancedb.connect(str(copy.parent)).open_table("mnist")
    rng = np.random.default_rng(0)
    picks = rng.choice(rows_done, size=50 if ctx.settings.quick else 200, replace=False)
    vectors = np.stack(
        lance.dataset(str(copy))
        ._take_rows(picks.tolist(), columns=["embedding"])["embedding"]
        .to_numpy(zero_copy_only=False)
    ).astype(np.float32)

    def ours(vector: np.ndarray) -> None:
        searcher.search(
            "mnist", SearchCreate(vector=vector.tolist(), k=K, nprobes=NPROBES, columns=COLUMNS)
        )

    def lancedb_flat(vector: np.ndarray) -> None:
        table.search(vector).bypass_vector_index().select(THEIR_COLUMNS).limit(K).to_arrow()

    def lancedb_indexed(vector: np.ndarray) -> None:
        table.checkout_latest()
        table.search(vector).nprobes(NPROBES).select(THEIR_COLUMNS).limit(K).to_arrow()

    details: dict[str, Any] = {"batch_inference": result, "forward_seconds": forward}
    for name, theirs in (("flat", lancedb_flat), ("indexed", lancedb_indexed)):
        if name == "indexed":
            searcher.build_index("mnist", IndexCreate(index_type="IVF_PQ"))
        _latencies(ours, theirs, vectors[:5])  # warm-up
        a, b = _latencies(ours, theirs, vectors)
        rows += _search_rows(name, a, b)
        details[f"search_{name}_seconds"] = {"platform": a, "lancedb": b}

    rows.append(_lineage_row(ctx, details))
    method = (
        f"dataset {origin} (a copy); model {model_origin}; batch inference by the platform's "
        f"script run directly, batches of {BATCH}, vs the exported model's forward over the "
        f"same decoded rows; search: {len(vectors)} queries by stored embeddings, k={K}, "
        f"nprobes={NPROBES}, columns {COLUMNS} on both sides (ours adds the row ids), the Data "
        "Platform's Searcher in process vs LanceDB's table.search on the same dataset (flat: "
        "bypass_vector_index; then an IVF_PQ index), each query by both in turn."
    )
    return AreaResult(rows, details, method)


def _lineage_row(ctx: Context, details: dict[str, Any]) -> Row:
    if ctx.platform is None or "model" not in ctx.artifacts:
        return Row(
            "lakeops",
            "lineage call latency",
            "ms",
            None,
            note="no model trained through the platform in this run",
            status=SKIP,
        )
    api = ctx.platform.api
    path = f"/api/v1/models/{ctx.artifacts['model']}/lineage"
    api.get(path).raise_for_status()
    times = []
    for _ in range(3 if ctx.settings.quick else 50):
        started = time.perf_counter()
        api.get(path).raise_for_status()
        times.append(time.perf_counter() - started)
    details["lineage_seconds"] = times
    return Row(
        "lakeops",
        "lineage call latency (p50)",
        "ms",
        median(times) * 1000,
        note=f"p99 {percentile(times, 99) * 1000:.1f} ms, through the AI Platform",
    )
