"""Ingest the four official MNIST IDX files into one Lance dataset (platform ingestion script).

Contract: ``run(input_path, output_path, params) -> stats``. ``input_path`` is a directory with
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each gzipped (``.gz``, preferred when both exist) or plain.
``output_path`` is a Lance dataset; an existing one gets a new version (``mode="overwrite"``),
nothing is ever deleted, so the previous version stays readable whatever happens here.

Params (all optional):

- ``normalize`` (bool, default false): pixel values are meant to be read in [0, 1].
- ``dtype`` (``"uint8"`` default, or ``"float32"``): how pixels are stored, see below.
- ``limit`` (int >= 1): ingest only the first N images of each split (quick tests).

Output schema (one row per image, train rows first, then test rows)::

    id     int64   not null  stable row id: train 0..59999, test 60000..69999 (the position in
                             the official files, so a dropped row never shifts the others)
    split  string  not null  "train" (train-*-ubyte files) or "test" (t10k-*-ubyte files)
    label  int64   not null  0..9; rows with any other label are dropped and counted
    image  binary  not null  the 28x28 pixels, row-major, as raw bytes: 784 uint8 bytes, or
                             784 little-endian float32 (3136 bytes) with ``dtype: float32``

Storage representation, and why. ``image`` is a ``binary`` column of raw pixel bytes with Lance
field metadata ``lance-encoding:compression=zstd`` (level 1), ``structural-encoding=miniblock``
and ``minichunk-size=65536``, written with Lance file format 2.2. Measured on real MNIST
(70k rows, pylance 14.0.2, 2 cores), bytes on disk / read train split into numpy:

    fixed_size_list<uint8>[784] (zstd metadata is ignored)   55.1 MB   ~0.05 s
    binary, zstd, default full-zip (zstd per 784-byte value)  16.0 MB   ~0.15-0.2 s
    binary, zstd, miniblock, 64 KiB chunks, level 1 (chosen)  11.9 MB   ~0.08-0.12 s
    Parquet zstd, same rows (pyarrow, image as binary)        12.1 MB   ~0.15-0.24 s

Full-zip compresses each 784-byte value on its own; miniblock compresses ~83 images per chunk,
which is what gets below Parquet. Larger chunks/levels save a little more space but make
random ``take`` decompress more and writes slower (level 9: 11.3 MB, ~5x slower writes);
format 2.1 caps chunks at 32 KiB; lz4 decodes faster but takes 16.2 MB. Reads beat Parquet's
mostly by decoding chunks on several threads, so the margin shrinks on a busy machine.
``normalize`` does not blow the data up to float32 (4x the bytes): pixels stay uint8 and the
schema says how to scale them. Field metadata on ``image``::

    mnist:dtype  "uint8" | "float32"   numpy dtype of the raw bytes (float32 is little-endian)
    mnist:shape  "28,28"               row-major image shape; 784 values per row
    mnist:scale  "0.00392156862745098" (1/255) when normalize and uint8, else "1.0"

and schema metadata ``normalized: "true" | "false"``. ``dtype: float32`` materialises the final
values (already divided by 255 when ``normalize``) for readers that want them as they are.

Reading the images as numpy (what the training script should do)::

    import lance
    import numpy as np

    ds = lance.dataset(path)
    meta = ds.schema.field("image").metadata              # keys and values are bytes
    dtype = np.dtype(meta[b"mnist:dtype"].decode()).newbyteorder("<")
    scale = float(meta[b"mnist:scale"])
    tbl = ds.to_table(columns=["image", "label"], filter="split = 'train'")
    x = np.empty((tbl.num_rows, 784), dtype)
    row = 0
    for chunk in tbl.column("image").chunks:            # pa.BinaryArray, no nulls
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32, n + 1, chunk.offset * 4)
        assert offsets[-1] - offsets[0] == n * 784 * dtype.itemsize   # every value 784 pixels
        data = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        x[row : row + n] = data.view(dtype).reshape(n, 784)   # one memcpy, no per-row Python
        row += n
    y = tbl.column("label").to_numpy()                  # int64
    # uint8 x plus scale; x * np.float32(scale) gives [0, 1] floats when normalized

Pipeline. The IDX files are parsed with numpy (Daft cannot read IDX), streaming: gzip/plain
files are read in chunks of ``CHUNK_ROWS`` images; each chunk becomes a Daft DataFrame on which
Daft expressions drop invalid labels and derive ``id``, ``split`` and the int64 ``label``; the
result is cast to one fixed Arrow schema (with the metadata above) and fed to
``lance.write_dataset`` through a ``pa.RecordBatchReader``, so memory stays at a few chunks
however large the input. Why not ``DataFrame.write_lance``: in daft 0.7.26 its sink buffers rows
in memory up to ``max_rows_per_file`` (1 Mi rows) before each ``write_fragments`` call, so a 10x
MNIST would sit in RAM; and a single lazy Daft plan over a ``daft.io.DataSource`` reading the
files was measured to buffer the whole input (RSS grew with input size). Per-chunk Daft costs
~5-20 ms per 16k rows (~0.05 s of a ~0.6 s MNIST ingestion).

Validation happens before anything is written: file presence, gzip signature, magic numbers
(images 2051, labels 2049), 28x28 images, equal image and label counts, and file sizes against
the headers (plain files: exact size; gzip: the ISIZE trailer, with a full decompression pass
when it disagrees, so a truncated gzip fails up front). Problems only visible while streaming
(a gzip CRC error, corrupt deflate data) raise inside the batch reader, which aborts the Lance
write before its commit: no new version appears. All of these raise ``ValueError`` naming the
file and the problem; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import os
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from typing import IO, Any

# The platform runs scripts without network: skip Daft's analytics ping (a daemon thread).
os.environ.setdefault("DAFT_ANALYTICS_ENABLED", "0")

import daft
import daft.runners
import lance
import numpy as np
import pyarrow as pa
from daft import DataType, col, lit

try:
    from lakekit.progress import report
except ImportError:  # running outside the platform's venv: progress is optional

    def report(**values: Any) -> None:
        """No-op stand-in for ``lakekit.progress.report``."""


IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
ROWS = COLS = 28
PIXELS = ROWS * COLS
NUM_CLASSES = 10
CHUNK_ROWS = 16384  # ~12.8 MB of uint8 pixels per chunk: big enough to amortise Daft planning
LANCE_FORMAT = "2.2"  # 2.1 caps miniblock chunks at 32 KiB; 2.2 honours minichunk-size below
IMAGE_ENCODING = {
    "lance-encoding:compression": "zstd",
    "lance-encoding:compression-level": "1",
    "lance-encoding:structural-encoding": "miniblock",
    "lance-encoding:minichunk-size": "65536",
}
# split name -> (images file, labels file), in output order
SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, OSError)
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def return_big_buffers_to_os() -> None:
    """Make glibc serve allocations >= 1 MiB with mmap, so freeing them returns the memory.

    Lance encodes pages on a pool of worker threads; with glibc's default (dynamic) mmap
    threshold those multi-MB buffers come from per-thread heap arenas and fragment them, and
    peak RSS crept up with input size (10x MNIST: 1.32x the 1x peak; with this: 1.20x, and the
    1x peak drops too). Affects only this process, which the platform dedicates to the script.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def use_in_process_daft_runner() -> None:
    """Pick Daft's native runner, unless a runner was chosen already (env or code).

    The per-chunk Daft work is small and local. With neither ``DAFT_RUNNER`` (which the
    platform sets, and Daft follows) nor a runner set, Daft imports ``ray`` (installed here for
    the Ray extra) just to look for a cluster: ~1.2 s on every ingestion.
    """
    if os.environ.get("DAFT_RUNNER"):
        return
    get_runner = getattr(daft.runners, "_get_runner", None)  # None while no runner is set
    if get_runner is not None and get_runner() is None:
        daft.set_runner_native()


# Plain classes, not dataclasses: the platform may exec this file without registering it in
# sys.modules, which dataclasses need to resolve annotations.
class IdxFile:
    """One validated IDX file: where it is and what its header says."""

    def __init__(self, path: str, count: int, header_bytes: int) -> None:
        self.path = path
        self.count = count  # number of records (images or labels)
        self.header_bytes = header_bytes

    def open_payload(self) -> IO[bytes]:
        """Open the file positioned at the first record."""
        fh = open_idx_stream(self.path)
        try:
            read_exact(fh, self.header_bytes, self.path)
        except BaseException:
            fh.close()
            raise
        return fh


def open_idx_stream(path: str) -> IO[bytes]:
    """A binary stream of the IDX bytes, decompressing ``.gz`` files on the fly."""
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_exact(fh: IO[bytes], nbytes: int, path: str) -> bytes:
    """Read exactly ``nbytes`` or raise ``ValueError`` (truncated file, broken gzip)."""
    try:
        data = fh.read(nbytes)
    except _GZIP_ERRORS as exc:
        raise ValueError(
            f"{path}: corrupt or truncated file ({type(exc).__name__}: {exc})"
        ) from exc
    if len(data) != nbytes:
        raise ValueError(
            f"{path}: truncated: expected {nbytes} more bytes but the file ended after {len(data)}"
        )
    return data


def expect_eof(fh: IO[bytes], path: str) -> None:
    """Check nothing follows the last record; for gzip this also runs the CRC check."""
    try:
        extra = fh.read(1 << 20)
    except _GZIP_ERRORS as exc:
        raise ValueError(f"{path}: corrupt file after the last record ({exc})") from exc
    if extra:
        raise ValueError(f"{path}: unexpected data after the last record the header announces")


def find_file(directory: str, name: str) -> str:
    """``name.gz`` or ``name`` in ``directory`` (the gzip wins: it carries a CRC)."""
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    expected = ", ".join(n for pair in SPLITS.values() for n in pair)
    raise FileNotFoundError(
        f"MNIST file missing: neither {name}.gz nor {name} in {directory} "
        f"(expected the four official IDX files: {expected}, each .gz or plain)"
    )


def gzip_uncompressed_size(path: str) -> int:
    """The true decompressed size, by decompressing it (only when ISIZE disagrees)."""
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                total += len(block)
    except _GZIP_ERRORS as exc:
        raise ValueError(
            f"{path}: corrupt or truncated gzip ({type(exc).__name__}: {exc})"
        ) from exc
    return total


def check_size(path: str, expected: int, what: str) -> None:
    """Compare the file's (decompressed) size with what its header announces."""
    if path.endswith(".gz"):
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            # ISIZE: uncompressed size mod 2**32 of the last gzip member; a mismatch means a
            # truncated file, or a multi-member gzip, which a full pass tells apart.
            isize = struct.unpack("<I", fh.read(4))[0]
        actual = expected if isize == expected % 2**32 else gzip_uncompressed_size(path)
        unit = "decompressed bytes"
    else:
        actual = os.path.getsize(path)
        unit = "bytes"
    if actual < expected:
        raise ValueError(
            f"{path}: truncated: header announces {what} = {expected} {unit}, the file has {actual}"
        )
    if actual > expected:
        raise ValueError(
            f"{path}: {actual - expected} unexpected trailing bytes after {what} "
            f"({expected} {unit} expected)"
        )


def open_idx(path: str, magic: int, dims: int) -> IdxFile:
    """Read and validate one IDX header plus the file size; nothing is loaded."""
    header_bytes = 4 + 4 * dims
    try:
        with open(path, "rb") as raw:
            if path.endswith(".gz") and raw.read(2) != b"\x1f\x8b":
                raise ValueError(f"{path}: not a gzip file (bad gzip signature)")
        with open_idx_stream(path) as fh:
            header = fh.read(header_bytes)
    except _GZIP_ERRORS as exc:
        raise ValueError(f"{path}: cannot read IDX header ({type(exc).__name__}: {exc})") from exc
    if len(header) < header_bytes:
        raise ValueError(f"{path}: truncated: {len(header)} bytes, shorter than the IDX header")
    values = struct.unpack(f">{1 + dims}I", header)
    if values[0] != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise ValueError(f"{path}: bad magic number {values[0]}, expected {magic} (IDX {kind})")
    count = values[1]
    if dims == 3 and values[2:] != (ROWS, COLS):
        raise ValueError(f"{path}: images are {values[2]}x{values[3]}, expected {ROWS}x{COLS}")
    item_bytes = PIXELS if dims == 3 else 1
    what = f"{count} {'images' if dims == 3 else 'labels'}"
    check_size(path, header_bytes + count * item_bytes, what)
    return IdxFile(path, count, header_bytes)


def plan_splits(input_path: str) -> dict[str, tuple[IdxFile, IdxFile]]:
    """Locate and validate all four files before anything is written."""
    if not os.path.isdir(input_path):
        raise FileNotFoundError(f"input_path {input_path} is not a directory")
    plan = {}
    for split, (images_name, labels_name) in SPLITS.items():
        images = open_idx(find_file(input_path, images_name), IMAGES_MAGIC, 3)
        labels = open_idx(find_file(input_path, labels_name), LABELS_MAGIC, 1)
        if images.count != labels.count:
            raise ValueError(
                f"count mismatch: {images.path} has {images.count} images but "
                f"{labels.path} has {labels.count} labels"
            )
        plan[split] = (images, labels)
    return plan


def output_schema(normalize: bool, dtype: str) -> pa.Schema:
    """The one schema every batch is cast to, metadata included."""
    scale = 1.0 / 255.0 if normalize and dtype == "uint8" else 1.0
    image_meta = {
        **IMAGE_ENCODING,
        "mnist:dtype": dtype,
        "mnist:shape": f"{ROWS},{COLS}",
        "mnist:scale": repr(scale),
    }
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("label", pa.int64(), nullable=False),
            pa.field("image", pa.binary(), nullable=False, metadata=image_meta),
        ],
        metadata={"normalized": "true" if normalize else "false", "source": "mnist-idx"},
    )


def raw_chunk(pixels: bytes, labels: bytes, first: int, normalize: bool, dtype: str) -> pa.Table:
    """Arrow view of one chunk of parsed IDX records (no copy for uint8 pixels)."""
    n = len(labels)
    values: np.ndarray = np.frombuffer(pixels, np.uint8)
    if dtype == "float32":
        # Only materialised on request; stored little-endian, divided by 255 when normalizing.
        values = np.divide(values, 255.0 if normalize else 1.0, dtype="<f4")
    width = PIXELS * values.itemsize
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    image = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)]
    )
    return pa.table(
        {
            "pos": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "label": pa.array(np.frombuffer(labels, np.uint8)),
            "image": image,
        }
    )


def clean_chunk(chunk: pa.Table, split: str, id_offset: int) -> pa.Table:
    """The Daft part: drop invalid labels, derive id/split, widen label to int64."""
    df = daft.from_arrow(chunk)
    # Labels are unsigned bytes, so ">= 0" always holds; only the upper bound can fail.
    df = df.where(col("label") < NUM_CLASSES)
    df = df.select(
        (col("pos") + lit(id_offset)).alias("id"),  # position in the official order
        lit(split).alias("split"),
        col("label").cast(DataType.int64()).alias("label"),
        col("image"),
    )
    return df.to_arrow()


class Counters:
    """What the stream has seen; filled in while Lance consumes the batches."""

    def __init__(self) -> None:
        self.done = 0  # records read from the IDX files
        self.invalid = 0  # records dropped for an invalid label
        self.written: dict[str, int] = {}  # records kept, per split


def stream_batches(
    plan: dict[str, tuple[IdxFile, IdxFile]],
    schema: pa.Schema,
    limit: int | None,
    normalize: bool,
    dtype: str,
    counters: Counters,
) -> Iterator[pa.RecordBatch]:
    """Yield cleaned record batches, split by split, ``CHUNK_ROWS`` images at a time."""
    total = sum(min(images.count, limit or images.count) for images, _ in plan.values())
    counters.written = dict.fromkeys(plan, 0)
    id_offset = 0
    for split, (images, labels) in plan.items():
        n = min(images.count, limit or images.count)
        with images.open_payload() as fi, labels.open_payload() as fl:
            for first in range(0, n, CHUNK_ROWS):
                k = min(CHUNK_ROWS, n - first)
                pixels = read_exact(fi, k * PIXELS, images.path)
                label_bytes = read_exact(fl, k, labels.path)
                raw = raw_chunk(pixels, label_bytes, first, normalize, dtype)
                cleaned = clean_chunk(raw, split, id_offset).cast(schema)
                counters.invalid += k - cleaned.num_rows
                counters.written[split] += cleaned.num_rows
                counters.done += k
                yield from cleaned.to_batches()
                report(records_done=counters.done, records_total=total, split=split)
            if n == images.count:  # the whole file was read: check its end (and gzip CRC)
                expect_eof(fi, images.path)
                expect_eof(fl, labels.path)
        id_offset += images.count  # ids follow the official numbering even under ``limit``


def parse_params(params: dict[str, Any] | None) -> tuple[bool, str, int | None]:
    """Validate ``params``: (normalize, dtype, limit)."""
    params = dict(params or {})
    normalize = params.get("normalize", False)
    dtype = params.get("dtype", "uint8")
    limit = params.get("limit")
    if not isinstance(normalize, bool):
        raise ValueError(f"params.normalize must be a boolean, got {normalize!r}")
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"params.dtype must be 'uint8' or 'float32', got {dtype!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"params.limit must be a positive integer, got {limit!r}")
    return normalize, dtype, limit


def existing_version(output_path: str) -> int | None:
    """The current version of the dataset at ``output_path``, or None if there is none."""
    try:
        return lance.dataset(output_path).version
    except (ValueError, FileNotFoundError):
        return None


def data_bytes(ds: lance.LanceDataset) -> int:
    """Size of the data files the current version references."""
    total = 0
    for fragment in ds.get_fragments():
        for data_file in fragment.metadata.files:
            size = getattr(data_file, "file_size_bytes", None)
            if size is None:
                size = os.path.getsize(os.path.join(ds.uri, "data", data_file.path))
            total += size
    return total


def run(input_path: str, output_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the MNIST IDX files in ``input_path`` and write them to Lance at ``output_path``.

    Returns counts (``total_records``, ``train_records``, ``test_records``,
    ``invalid_records``), ``bytes_written`` (data files of the new version), ``seconds`` and
    the new and previous dataset versions.
    """
    started = time.perf_counter()
    return_big_buffers_to_os()
    use_in_process_daft_runner()
    normalize, dtype, limit = parse_params(params)
    plan = plan_splits(input_path)  # every check that can run before writing runs here
    schema = output_schema(normalize, dtype)
    previous = existing_version(output_path)
    counters = Counters()
    failure: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        # Lance turns an exception from the reader into an OSError carrying only its text;
        # keep the original so the caller gets the ValueError naming the file.
        try:
            yield from stream_batches(plan, schema, limit, normalize, dtype, counters)
        except BaseException as exc:
            failure.append(exc)
            raise

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    try:
        # Lance commits once, at the end: an error raised by the reader aborts without a commit.
        ds = lance.write_dataset(
            reader,
            output_path,
            mode="create" if previous is None else "overwrite",
            data_storage_version=LANCE_FORMAT,
        )
    except Exception:
        if failure:
            raise failure[0] from None
        raise

    written = counters.written
    return {
        "total_records": ds.count_rows(),
        "train_records": written.get("train", 0),
        "test_records": written.get("test", 0),
        "invalid_records": counters.invalid,
        "records_read": counters.done,
        "bytes_written": data_bytes(ds),
        "seconds": round(time.perf_counter() - started, 3),
        "version": ds.version,
        "previous_version": previous,
        "normalized": normalize,
        "dtype": dtype,
        "inputs": {split: [f.path for f in files] for split, files in plan.items()},
    }
