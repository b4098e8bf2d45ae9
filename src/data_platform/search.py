"""Similar-example search over a dataset's embedding column, and its vector index.

A query is a vector, a row's own vector (``row_id``), or an input that a model version turns
into an embedding the way batch inference did (same layer, same preprocessing). Without an
index the search is an exact flat scan; once ``build_index`` made one on the column, Lance's
IVF index answers (``nprobes``, ``refine_factor`` tune it).

Opened datasets are kept (their index and metadata caches make a query cheap): a dataset named
plainly is checked for a newer version on each query (one small read), so a new version (more
columns, an index) is seen at once; ``NAME@V`` searches that exact version, ``NAME@tag`` the
version the tag names now.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import lance
import numpy as np
import pyarrow as pa

from data_platform.builtins import BATCH_INFERENCE
from data_platform.store import Lake
from lakeapi.errors import DatasetNotFound, InvalidRequest, PlatformError, VersionNotFound
from lakeapi.lakeops import IndexCreate, IndexInfo, SearchCreate, SearchHit, SearchResult
from lakeapi.names import Ref, parse_ref, split_at
from lakeapi.schemas import Task, TaskStatus
from lakekit.images import decode_image

# lakekit.embedding's default layer, and lakekit.batch_inference's field metadata keys (both
# modules import torch, which a search by vector never needs).
PENULTIMATE = "penultimate"
MODEL_KEY, VERSION_KEY, LAYER_KEY = b"lakeops:model", b"lakeops:model_version", b"lakeops:layer"

MODEL_CACHE = 4  # loaded embedding models kept, by (path, version, layer)
DATASET_CACHE = 8  # opened datasets kept, by (uri, version or None for the latest)
SHAPE_CACHE = 64  # dataset versions whose schema and indexes are kept
MAX_PARTITIONS = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Shape:
    """What a query checks against, of one dataset version."""

    schema: pa.Schema
    names: frozenset[str]
    plain_columns: list[str]
    indexed: set[str]  # columns with a vector index


class Searcher:
    """Searches the lake's datasets; keeps the few models queries embed with loaded."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._models: OrderedDict[tuple[str, int | None, str | None], Any] = OrderedDict()
        self._datasets: OrderedDict[tuple[str, int | None], lance.LanceDataset] = OrderedDict()
        self._shapes: dict[tuple[str, int], _Shape] = {}
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    def _open(self, ref: str) -> lance.LanceDataset:
        """``NAME`` at its latest version, ``NAME@V`` or ``NAME@tag``, opened once and kept.

        Raises:
            DatasetNotFound, VersionNotFound, TagNotFound.
        """
        name, at = split_at(ref, "dataset id")
        uri = self.lake.path_of("datasets", name)
        if isinstance(at, str):  # tags move: where it points now
            at = self.lake.resolve(Ref("datasets", name, tag=at))
        key = (uri, at)
        with self._lock:
            ds = self._datasets.get(key)
            if ds is not None:
                self._datasets.move_to_end(key)
        try:
            if ds is None:
                ds = self._first_open(uri, name, at)
            elif at is None:
                latest = ds.latest_version
                if latest != ds.version:
                    ds = ds.checkout_version(latest)  # keeps the session: its caches
        except (ValueError, OSError) as exc:
            with self._lock:
                self._datasets.pop(key, None)
            raise DatasetNotFound(f"Dataset '{name}' does not exist") from exc
        with self._lock:
            self._datasets[key] = ds
            while len(self._datasets) > DATASET_CACHE:
                self._datasets.popitem(last=False)
        return ds

    def _first_open(self, uri: str, name: str, version: int | None) -> lance.LanceDataset:
        if version is not None:
            self.lake.resolve(Ref("datasets", name, version=version))  # the 404 if none
        try:
            return lance.dataset(
                uri, version=version, storage_options=self.lake.storage_options or None
            )
        except (ValueError, OSError) as exc:
            if version is None:
                raise DatasetNotFound(f"Dataset '{name}' does not exist") from exc
            raise VersionNotFound(f"Dataset '{name}' has no version {version}") from exc

    # -- search --------------------------------------------------------------------------

    def search(self, name: str, req: SearchCreate) -> SearchResult:
        """The ``k`` nearest rows to the query, nearest first.

        Raises:
            DatasetNotFound, ModelNotFound: no such dataset or model.
            InvalidRequest: not exactly one query, an unknown column, a bad filter or vector.
        """
        started = time.perf_counter()
        ds = self._open(name)
        shape = self._shape(ds)
        field = _vector_field(shape.schema, req.column)
        query = self._query(ds, req, field.type.list_size)
        columns = req.columns if req.columns is not None else shape.plain_columns
        unknown = sorted(set(columns) - shape.names)
        if unknown:
            raise InvalidRequest(f"dataset '{name}' has no columns {unknown}")
        indexed = req.column in shape.indexed
        nearest: dict[str, Any] = {
            "column": req.column,
            "q": query,
            "k": req.k,
            "use_index": indexed,
        }
        if indexed and req.nprobes is not None:
            nearest["nprobes"] = req.nprobes
        if indexed and req.refine_factor is not None:
            nearest["refine_factor"] = req.refine_factor
        try:
            table = ds.to_table(
                columns=[*columns, "_distance"],
                nearest=nearest,
                filter=req.filter or None,
                prefilter=bool(req.filter),
                with_row_id=True,
                disable_scoring_autoprojection=True,
            )
        except (ValueError, OSError) as exc:
            raise InvalidRequest(f"search failed: {exc}") from None
        hits = _hits(table, columns)
        return SearchResult(
            hits=hits,
            indexed=indexed,
            dataset_version=ds.version,
            seconds=round(time.perf_counter() - started, 6),
        )

    def _shape(self, ds: lance.LanceDataset) -> _Shape:
        """The version's schema and indexes, read once: a version never changes, and reading
        them again (a schema and an index list built per call) is a good part of a query's
        own cost next to an indexed search."""
        key = (ds.uri, ds.version)
        shape = self._shapes.get(key)
        if shape is None:
            schema = ds.schema
            indexed = {f for index in ds.describe_indices() for f in index.field_names}
            shape = _Shape(schema, frozenset(schema.names), _plain_columns(schema), indexed)
            with self._lock:
                if len(self._shapes) >= SHAPE_CACHE:
                    self._shapes.clear()
                self._shapes[key] = shape
        return shape

    def _query(self, ds: lance.LanceDataset, req: SearchCreate, dim: int) -> np.ndarray:
        given = [x for x in (req.vector, req.row_id, req.input) if x is not None]
        if len(given) != 1:
            raise InvalidRequest("give exactly one of 'vector', 'row_id' or 'input'")
        if req.vector is not None:
            vector = np.asarray(req.vector, np.float32)
        elif req.row_id is not None:
            rows = ds._take_rows([req.row_id], columns=[req.column])
            value = rows.column(req.column)[0].as_py() if rows.num_rows else None
            if value is None:
                raise InvalidRequest(f"row {req.row_id} has no {req.column!r} vector")
            vector = np.asarray(value, np.float32)
        else:
            vector = self.embed(req.model, req.model_version, req.layer, req.input)
        if vector.shape != (dim,) or not np.isfinite(vector).all():
            raise InvalidRequest(
                f"the query must be {dim} finite numbers (the width of {req.column!r}); "
                f"got shape {list(vector.shape)}"
            )
        return vector

    def embed(
        self, model: str | None, version: int | None, layer: str | None, value: Any
    ) -> np.ndarray:
        """One input's embedding by a model of the lake (as batch inference computes it).

        Raises:
            InvalidRequest: no model named, or an input the model's codec cannot read.
            ModelNotFound: no such model (or version).
        """
        if model is None:
            raise InvalidRequest("an 'input' query needs 'model': the model that embeds it")
        from lakekit.embedding import image_inputs

        embedder = self._embedder(self.lake.path_of("models", model), version, layer)
        preprocessing = embedder.info.get("preprocessing") or {}
        if preprocessing.get("kind") == "image":
            x = image_inputs(_image(value)[None], preprocessing)
        else:
            try:
                x = np.asarray(value, np.float32)[None]
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(f"input is not numbers: {exc}") from None
        _, emb = embedder.forward(x)
        return emb[0]

    def _embedder(self, path: str, version: int | None, layer: str | None) -> Any:
        from lakekit.embedding import EmbeddingModel  # torch: only once a query embeds

        # Keyed by the exact version: a model retrained meanwhile is loaded anew.
        key = (path, version or self.lake.version_of(path), layer or PENULTIMATE)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        # One load at a time: torch.export.load is not thread-safe ("_CURRENT_DESERIALIZER is
        # already set"), and a query arriving during a warm-up then waits for it, then finds it.
        with self._loading:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            embedder = EmbeddingModel(path, key[1], layer, "cpu", self.lake.storage_options)
            with self._lock:
                self._models[key] = embedder
                while len(self._models) > MODEL_CACHE:
                    self._models.popitem(last=False)
        return embedder

    def warm(self, name: str, column: str = "embedding") -> threading.Thread | None:
        """Load, in the background, the model that wrote ``column`` (its field metadata names
        it), so the first query that embeds an input does not pay for torch and the model.

        Returns the loading thread, or None when the column names no model of this lake.
        """
        try:
            meta = self._open(name).schema.field(column).metadata or {}
            model = meta[MODEL_KEY].decode()
            version = int(meta[VERSION_KEY])
            layer = meta.get(LAYER_KEY, PENULTIMATE.encode()).decode()
            path = self.lake.path_of("models", model)
        except (KeyError, ValueError, PlatformError):
            return None

        def load() -> None:
            try:
                self._embedder(path, version, layer)
            except (PlatformError, ValueError, OSError) as exc:  # the query will say why
                log.info("warming %s version %d: %s", model, version, exc)

        thread = threading.Thread(target=load, name=f"warm-{model}", daemon=True)
        thread.start()
        return thread

    # -- indexes -------------------------------------------------------------------------

    def build_index(self, name: str, req: IndexCreate) -> IndexInfo:
        """Build (or replace) a vector index on the column: a new dataset version.

        Raises:
            DatasetNotFound: no such dataset.
            InvalidRequest: not a vector column, or too few rows to train the index.
        """
        if "@" in name:
            raise InvalidRequest("an index is built on the latest version: name no version")
        # A dataset object of its own: create_index holds it (mutably) for the whole build,
        # and a search on a shared object meanwhile would fail ("already borrowed").
        ds = self._first_open(self.lake.path_of("datasets", name), name, None)
        field = _vector_field(ds.schema, req.column)
        rows = ds.count_rows()
        partitions = req.num_partitions or max(1, min(MAX_PARTITIONS, int(np.sqrt(rows) / 2)))
        kwargs: dict[str, Any] = {"num_partitions": partitions}
        if req.index_type == "IVF_PQ":
            dim = field.type.list_size
            kwargs["num_sub_vectors"] = req.num_sub_vectors or _sub_vectors(dim)
        try:
            ds = ds.create_index(
                req.column,
                req.index_type,
                name=f"{req.column}_idx",
                metric=req.metric,
                replace=True,
                **kwargs,
            )
        except (ValueError, OSError) as exc:
            raise InvalidRequest(f"cannot build a {req.index_type} index: {exc}") from None
        self.warm(name, req.column)
        return IndexInfo(
            name=f"{req.column}_idx",
            column=req.column,
            index_type=req.index_type,
            dataset_version=ds.version,
        )

    def indexes(self, name: str) -> list[IndexInfo]:
        ds = self._open(name)
        return [
            IndexInfo(
                name=i.name,
                column=(list(i.field_names) or [""])[0],
                index_type=str(i.index_type),
                dataset_version=ds.version,
            )
            for i in ds.describe_indices()
        ]


_searchers: weakref.WeakKeyDictionary[Lake, Searcher] = weakref.WeakKeyDictionary()
_searchers_lock = threading.Lock()


def searcher_of(lake: Lake) -> Searcher:
    """The lake's one Searcher: the routes and the task manager share its caches."""
    with _searchers_lock:
        found = _searchers.get(lake)
        if found is None:
            found = _searchers[lake] = Searcher(lake)
        return found


def warm_after(lake: Lake, task: Task) -> None:
    """Once a batch inference wrote its embeddings, load its model for the queries to come."""
    try:
        parsed = parse_ref(task.output)
        if task.kind == BATCH_INFERENCE and task.status is TaskStatus.COMPLETED and parsed:
            searcher_of(lake).warm(parsed.name)
    except Exception:  # a warm-up never fails the task that completed
        log.exception("%s: warming its model for search failed", task.id)


def _vector_field(schema: pa.Schema, column: str) -> pa.Field:
    if column not in schema.names:
        raise InvalidRequest(
            f"dataset has no column {column!r}: run a batch inference on it first, or name "
            f"a vector column of {schema.names}"
        )
    field = schema.field(column)
    if not pa.types.is_fixed_size_list(field.type) or not pa.types.is_floating(
        field.type.value_type
    ):
        raise InvalidRequest(f"column {column!r} is not a vector column ({field.type})")
    return field


def _plain_columns(schema: pa.Schema) -> list[str]:
    """What a hit shows by default: every column but vectors and binaries (images)."""
    return [
        f.name
        for f in schema
        if not pa.types.is_fixed_size_list(f.type)
        and not pa.types.is_binary(f.type)
        and not pa.types.is_large_binary(f.type)
    ]


def _hits(table: pa.Table, columns: list[str]) -> list[SearchHit]:
    ids = table.column("_rowid").to_pylist()
    distances = table.column("_distance").to_pylist()
    values = {c: table.column(c).to_pylist() for c in columns}
    return [
        SearchHit(
            row_id=row_id,
            distance=float(distance),
            values={c: _json(values[c][i]) for c in columns},
        )
        for i, (row_id, distance) in enumerate(zip(ids, distances, strict=True))
    ]


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _sub_vectors(dim: int) -> int:
    for size in (16, 8, 4, 2, 1):
        if dim % size == 0 and dim // size >= 1:
            return dim // size
    return 1


def _image(value: Any) -> np.ndarray:
    """A (28, 28) uint8 image from what /predict takes: base64 (PNG/JPEG or 784 raw bytes),
    or 784 pixels (flat or 28x28)."""
    if isinstance(value, str):
        return decode_image(value)
    try:
        pixels = np.asarray(value, np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"input is not an image: {exc}") from None
    if pixels.size != 784 or pixels.ndim not in (1, 2):
        raise InvalidRequest("input must be 784 pixels (flat or 28x28) or a base64 image")
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
        raise InvalidRequest("input pixels must be numbers in [0, 255]")
    return pixels.reshape(28, 28).astype(np.uint8)
