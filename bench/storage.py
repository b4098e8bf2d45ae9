"""Storage: the MNIST dataset's bytes on disk and the time to read its train split into numpy,
against Parquet (zstd, pyarrow) of the same rows and against the gzipped IDX files.

Bytes: every file of the Lance dataset directory (one version: data, manifest, transaction)
against the Parquet file written by ``pq.write_table(table, compression="zstd")`` with
pyarrow's defaults, and the four ``.gz`` files. Reads, each into a (60000, 784) uint8 array
and int64 labels, opening the files anew every time (page cache warm for all three):

- Lance: the recipe in ``mnist_clean``'s docstring (``to_table`` with the split filter, then
  one copy per chunk from the binary column's buffers);
- Parquet: ``pq.read_table(columns=[image, label], filters=[split == train])`` and the same
  buffer copy;
- IDX: ``gzip`` + ``np.frombuffer``.

The three results are checked equal. One warm-up read each, then alternating rounds.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.context import AreaResult, Context
from bench.lab import REPO
from bench.report import Row, Target
from bench.stats import median, pair_ratios_text, paired_ratio, rotate

SIZE_VS_PARQUET = Target("ratio", "<=", 1.0, "<= Parquet-zstd")
READ_VS_PARQUET = Target("ratio", "<=", 0.5, "<= 0.5x Parquet")
MB = 1e6
Arrays = tuple[np.ndarray, np.ndarray]

# Runs the ingestion script itself when the platform did not ingest in this run (e.g.
# ``--only storage``): the same code, so the same bytes, without starting the services.
_DIRECT_INGEST = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("mnist_clean", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.run(sys.argv[2], sys.argv[3], {"normalize": True})
"""


def binary_to_numpy(column: pa.ChunkedArray, row_bytes: int = 784) -> np.ndarray:
    """The docstring's buffer trick: one memcpy per chunk, no per-row Python."""
    x = np.empty((len(column), row_bytes), np.uint8)
    row = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32, n + 1, chunk.offset * 4)
        assert offsets[-1] - offsets[0] == n * row_bytes
        data = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        x[row : row + n] = data.reshape(n, row_bytes)
        row += n
    return x


def read_lance(path: Path) -> Arrays:
    ds = lance.dataset(str(path))
    tbl = ds.to_table(columns=["image", "label"], filter="split = 'train'")
    return binary_to_numpy(tbl.column("image")), tbl.column("label").to_numpy()


def read_parquet(path: Path) -> Arrays:
    tbl = pq.read_table(path, columns=["image", "label"], filters=[("split", "=", "train")])
    return binary_to_numpy(tbl.column("image")), tbl.column("label").to_numpy()


def read_idx(directory: Path) -> Arrays:
    with gzip.open(directory / "train-images-idx3-ubyte.gz", "rb") as fh:
        x = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(directory / "train-labels-idx1-ubyte.gz", "rb") as fh:
        y = np.frombuffer(fh.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def dataset_for(ctx: Context) -> tuple[Path, str]:
    """The dataset the platform ingested in this run, or the script's output made directly."""
    if "dataset" in ctx.artifacts:
        return ctx.lab.dataset_path(ctx.artifacts["dataset"]), "ingested through the platform"
    out = ctx.lab.root / "storage" / "mnist.lance"
    script = REPO / "scripts" / "pipelines" / "mnist_clean.py"
    source = ctx.lab.data_root / ctx.lab.mnist_input
    subprocess.run(
        [sys.executable, "-c", _DIRECT_INGEST, str(script), str(source), str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "DAFT_ANALYTICS_ENABLED": "0"},
    )
    return out, "written by mnist_clean.py run directly (the platform did not ingest)"


def timed_reads(ctx: Context, readers: dict[str, Callable[[], Arrays]]) -> dict[str, list[float]]:
    reference = None
    for name, read in readers.items():  # warm-up, and check that all agree
        x, y = read()
        if reference is None:
            reference = (x, y)
        elif not (np.array_equal(x, reference[0]) and np.array_equal(y, reference[1])):
            raise AssertionError(f"{name} read differs from the Lance read")
    times: dict[str, list[float]] = {name: [] for name in readers}

    def round_(i: int) -> None:
        for name in rotate(list(readers), i):
            started = time.perf_counter()
            readers[name]()
            times[name].append(time.perf_counter() - started)

    ctx.settings.rounds(round_, full=9, least=5, budget_s=15)
    return times


def run(ctx: Context) -> AreaResult:
    path, origin = dataset_for(ctx)
    scratch = ctx.lab.root / "storage"
    scratch.mkdir(parents=True, exist_ok=True)
    parquet = scratch / "mnist.zstd.parquet"
    pq.write_table(lance.dataset(str(path)).to_table(), parquet, compression="zstd")
    idx_dir = ctx.lab.data_root / ctx.lab.mnist_input
    sizes = {
        "lance": tree_bytes(path),
        "lance_data_files": tree_bytes(path / "data"),
        "parquet_zstd": parquet.stat().st_size,
        "idx_gz": sum(f.stat().st_size for f in idx_dir.glob("*.gz")),
    }
    times = timed_reads(
        ctx,
        {
            "lance": lambda: read_lance(path),
            "parquet": lambda: read_parquet(parquet),
            "idx_gz": lambda: read_idx(idx_dir),
        },
    )
    rows = [
        Row(
            "storage",
            "MNIST dataset bytes on disk",
            "MB",
            sizes["lance"] / MB,
            baseline=sizes["parquet_zstd"] / MB,
            baseline_label="Parquet zstd",
            ratio=sizes["lance"] / sizes["parquet_zstd"],
            target=SIZE_VS_PARQUET,
            note=f"data files alone {sizes['lance_data_files'] / MB:.2f} MB",
        ),
        Row(
            "storage",
            "MNIST dataset bytes vs IDX gz",
            "MB",
            sizes["lance"] / MB,
            baseline=sizes["idx_gz"] / MB,
            baseline_label="IDX .gz",
            ratio=sizes["lance"] / sizes["idx_gz"],
        ),
        Row(
            "storage",
            "read train split into numpy",
            "s",
            median(times["lance"]),
            baseline=median(times["parquet"]),
            baseline_label="Parquet zstd",
            ratio=paired_ratio(times["lance"], times["parquet"]),
            target=READ_VS_PARQUET,
            note=pair_ratios_text(times["lance"], times["parquet"]),
        ),
        Row(
            "storage",
            "read train split vs IDX gz",
            "s",
            median(times["lance"]),
            baseline=median(times["idx_gz"]),
            baseline_label="gzip+numpy",
            ratio=paired_ratio(times["lance"], times["idx_gz"]),
        ),
    ]
    method = (
        f"dataset {origin}; bytes: all files of the Lance dataset dir vs pq.write_table(zstd, "
        "pyarrow defaults: one row group, level 1) of the same rows vs the 4 IDX .gz files; "
        "reads of the train split into uint8 (60000, 784) + int64 labels: Lance by the "
        "mnist_clean docstring recipe, Parquet by pq.read_table with the split filter and the "
        f"same buffer copy, IDX by gzip+numpy; results checked equal; {len(times['lance'])} "
        "alternating "
        "rounds after a warm-up, median of per-round ratios."
    )
    return AreaResult(rows, {"bytes": sizes, "read_seconds": times, "dataset": origin}, method)
