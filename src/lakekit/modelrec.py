"""The model record: one Lance dataset per model, one row, one Lance version per (re-)train.

This module is the record's layout; scripts save and load models through :mod:`lakekit.models`.
Columns (all plain, so ``lance.dataset(p).to_table()`` is readable by anyone):

==================  =============  =====================================================
column              type           content
==================  =============  =====================================================
name                string         model name (the path's stem, ``mnist_cnn_v1``)
architecture        string         short human description of the network
format              string         ``torch.export`` (how ``weights`` is serialised)
weights             large_binary   a ``torch.export`` PT2 archive: the weights *and* the
                                   graph that rebuilds the network, so serving needs no
                                   model class (dynamic batch dimension, eval mode)
weights_bytes       int64          size of ``weights`` (listing without reading it)
weights_sha256      string         checked on load
num_parameters      int64          parameter count
input_spec          string (JSON)  the one input's shape without the batch and dtype, plus
                                   the image preprocessing's parameters, e.g.
                                   {"shape": [1, 28, 28], "dtype": "float32",
                                   "scale": 1/255, "mean": 0.1307, "std": 0.3081}
signature           string (JSON)  named inputs and outputs with dtype and shape
                                   (:mod:`lakekit.signature`); since record_version 2
preprocessing       string (JSON)  null, or how raw requests become inputs, e.g.
                                   {"kind": "image", "scale", "mean", "std"}; since 2
labels              list<string>   class labels along the first output's last dimension
params              string (JSON)  training parameters
metrics             string (JSON)  final metrics
history             string (JSON)  one dict per epoch
source              string (JSON)  {"path", "name", "version"} of the training dataset
provenance          string (JSON)  the task that wrote it: {"task_id", "script",
                                   "script_sha256"} (optional: older records lack it)
framework           string (JSON)  torch / python / pylance versions
created_at          string         UTC ISO 8601
record_version      int32          version of this layout (2)
==================  =============  =====================================================

The schema metadata ``lakekit:record = model`` marks a dataset as a model record. Version-1
records (no ``signature``/``preprocessing`` columns) still read: their signature is derived
from ``input_spec`` and their labels (:func:`lakekit.signature.from_input_spec`).

Importing this module does not import torch (the Data Platform lists models with
:func:`read_model_info` alone); writing and loading do.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lance
import numpy as np
import pyarrow as pa

from lakeapi.errors import AlreadyExists, InvalidRequest, ModelNotFound
from lakeapi.names import split_uri
from lakekit import signature as sig
from lakekit.taskenv import provenance, write_mode

if TYPE_CHECKING:
    import torch

RECORD_VERSION = 2
FORMAT = "torch.export"
_MARKER_KEY = b"lakekit:record"
_MARKER_VALUE = b"model"
_JSON_COLUMNS = (
    "input_spec",
    "signature",
    "preprocessing",
    "params",
    "metrics",
    "history",
    "source",
    "framework",
    "provenance",
)
# Columns added since the first layout: a record without them is still a model record.
ADDED_IN_V2 = ("signature", "preprocessing", "provenance")

SCHEMA = pa.schema(
    [
        pa.field("name", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("format", pa.string()),
        pa.field("weights", pa.large_binary()),
        pa.field("weights_bytes", pa.int64()),
        pa.field("weights_sha256", pa.string()),
        pa.field("num_parameters", pa.int64()),
        pa.field("input_spec", pa.string()),
        pa.field("signature", pa.string()),
        pa.field("preprocessing", pa.string()),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("params", pa.string()),
        pa.field("metrics", pa.string()),
        pa.field("history", pa.string()),
        pa.field("source", pa.string()),
        pa.field("framework", pa.string()),
        pa.field("provenance", pa.string()),
        pa.field("created_at", pa.string()),
        pa.field("record_version", pa.int32()),
    ],
    metadata={_MARKER_KEY: _MARKER_VALUE, b"lakekit:record_version": str(RECORD_VERSION).encode()},
)
INFO_COLUMNS = [f.name for f in SCHEMA if f.name != "weights"]
REQUIRED_COLUMNS = [name for name in SCHEMA.names if name not in ADDED_IN_V2]


@dataclass
class LoadedModel:
    """A model rebuilt from its record.

    ``module`` takes the signature's inputs as positional tensors (for an image model, a float
    (N, 1, 28, 28) batch) and returns its outputs; :meth:`infer` does the same on numpy
    arrays, checked against the signature.
    """

    module: torch.nn.Module
    input_spec: dict[str, Any]
    labels: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def signature(self) -> dict[str, Any]:
        return self.info["signature"]

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        return self.info.get("preprocessing")

    def infer(self, inputs: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
        """Run the network once on a batch: input name -> array in, output name -> array out.

        A single array is taken as the one input of a one-input model.

        Raises:
            InvalidRequest: a missing or unknown input, or a wrong dtype or shape.
        """
        import torch

        from lakekit.export import flatten_outputs

        names = [i["name"] for i in self.signature["inputs"]]
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise InvalidRequest(f"the model takes several inputs {names}: pass them by name")
            inputs = {names[0]: inputs}
        arrays = sig.check_inputs(self.signature, inputs)
        dtypes = [getattr(torch, i["dtype"]) for i in self.signature["inputs"]]
        tensors = [
            torch.from_numpy(np.ascontiguousarray(a)).to(self.device, dtype=dtype)
            for a, dtype in zip(arrays, dtypes, strict=True)
        ]
        with torch.inference_mode():
            values, _ = flatten_outputs(self.module(*tensors))
        out_names = [o["name"] for o in self.signature["outputs"]]
        return {
            name: (value.float() if value.dtype == torch.bfloat16 else value).cpu().numpy()
            for name, value in zip(out_names, values, strict=True)
        }


def model_name(path: str | os.PathLike[str]) -> str:
    """The model's name: the last path component without ``.lance``."""
    base = os.path.basename(split_uri(os.fspath(path))[0].rstrip("/"))
    return base[: -len(".lance")] if base.endswith(".lance") else base


def export_module(module: torch.nn.Module, example_input: torch.Tensor) -> bytes:
    """Serialise ``module`` (in eval mode, on CPU) as a PT2 archive with a dynamic batch dim.

    Raises:
        ValueError: the module cannot be exported.
    """
    from lakekit.export import export

    return export(module, example_input)[0]


def _json_safe(value: Any) -> Any:
    """Make metric values JSON-safe: tensors/numpy scalars to float, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | str | None | int):
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if isinstance(value, int) else str(value)


def _dumps(value: Any) -> str:
    return json.dumps(_json_safe(value), allow_nan=False, sort_keys=True)


def _framework() -> dict[str, str]:
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "pylance": lance.__version__,
        "format": FORMAT,
    }


def _open(
    path: str | os.PathLike[str],
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> lance.LanceDataset:
    """Open a model record; ModelNotFound if nothing is there, InvalidRequest if not a model.

    A pinned URI (``...?version=N``, as a task input ``models/NAME@3`` arrives) opens N."""
    path, pinned = split_uri(os.fspath(path))
    version = pinned if version is None else version
    if "://" not in path and (
        not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path))
    ):
        raise ModelNotFound(f"no model at {path}")
    try:
        ds = lance.dataset(path, version=version, storage_options=storage_options)
    except (ValueError, OSError) as exc:
        if version is not None and os.path.isdir(os.path.join(path, "_versions")):
            raise ModelNotFound(f"model {path} has no version {version}") from exc
        if "://" in path and "not found" in str(exc).lower():
            raise ModelNotFound(f"no model at {path}") from exc
        raise InvalidRequest(f"{path} is not a model record (not a Lance dataset)") from exc
    _check_is_model(ds, path)
    return ds


def _check_is_model(ds: lance.LanceDataset, path: str) -> None:
    schema = ds.schema
    missing = [name for name in REQUIRED_COLUMNS if name not in schema.names]
    if (schema.metadata or {}).get(_MARKER_KEY) != _MARKER_VALUE or missing:
        detail = f"missing columns {missing}" if missing else "no lakekit:record=model marker"
        raise InvalidRequest(f"{path} is not a model record ({detail})")


def _row(ds: lance.LanceDataset, columns: list[str], path: str) -> dict[str, Any]:
    present = [name for name in columns if name in ds.schema.names]
    rows = ds.to_table(columns=present, limit=2).to_pylist()
    if len(rows) != 1:
        raise InvalidRequest(f"{path} is not a model record (it holds {len(rows)} rows, not 1)")
    return rows[0]


def _info_from_row(row: dict[str, Any], ds: lance.LanceDataset, path: str) -> dict[str, Any]:
    info = dict(row)
    for name in _JSON_COLUMNS:
        try:
            info[name] = json.loads(info[name]) if info.get(name) is not None else None
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{path}: column {name} is not valid JSON") from exc
    if "signature" not in row:  # record_version 1: the layout before signatures
        spec, labels = info.get("input_spec") or {}, info.get("labels") or []
        info["signature"] = sig.from_input_spec(spec, labels)
        info["preprocessing"] = sig.preprocessing_from_input_spec(spec)
    info["path"] = split_uri(path)[0]
    info["version"] = ds.version
    info["provenance"] = info.get("provenance") or {}
    return info


def write_record(
    output_path: str | os.PathLike[str],
    *,
    weights: bytes,
    signature: dict[str, Any],
    num_parameters: int,
    preprocessing: dict[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    source: dict[str, Any] | None = None,
    architecture: str = "",
    input_spec: dict[str, Any] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write (or re-write, as a new Lance version) the record of an exported network.

    ``input_spec`` defaults to the one :func:`lakekit.signature.input_spec_of` derives.

    Raises:
        ValueError: the signature, labels or preprocessing are not valid.
        InvalidRequest: ``output_path`` holds a Lance dataset that is not a model record.
    """
    path = os.fspath(output_path)
    labels = [str(label) for label in labels or []]
    problem = (
        sig.problem(signature)
        or sig.labels_problem(signature, labels)
        or sig.preprocessing_problem(preprocessing, signature)
    )
    if problem:
        raise ValueError(problem)
    mode = write_mode()
    if mode == "append":
        raise ValueError("a model record cannot be appended to: write it with mode overwrite")
    exists = "://" in path or os.path.exists(path)
    if exists:
        try:
            _open(path, storage_options=storage_options)
        except ModelNotFound:
            exists = False
        # An existing non-model dataset raises InvalidRequest here: never overwrite data.
    if exists and mode == "create":
        raise AlreadyExists(f"model {path} already exists (mode 'create')")
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        "name": model_name(path),
        "architecture": architecture,
        "format": FORMAT,
        "weights": weights,
        "weights_bytes": len(weights),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "num_parameters": num_parameters,
        "input_spec": _dumps(input_spec or sig.input_spec_of(signature, preprocessing)),
        "signature": _dumps(signature),
        "preprocessing": _dumps(preprocessing),
        "labels": labels,
        "params": _dumps(params or {}),
        "metrics": _dumps(metrics or {}),
        "history": _dumps(history or []),
        "source": _dumps(source or {}),
        "framework": _dumps(_framework()),
        "provenance": _dumps(provenance()),
        "created_at": created_at,
        "record_version": RECORD_VERSION,
    }
    table = pa.Table.from_pylist([record], schema=SCHEMA)
    mode = "overwrite" if exists else "create"
    ds = lance.write_dataset(table, path, mode=mode, storage_options=storage_options)
    return {
        "path": path,
        "name": record["name"],
        "version": ds.version,
        "weights_bytes": record["weights_bytes"],
        "num_parameters": record["num_parameters"],
        "created_at": created_at,
    }


def write_model(
    output_path: str | os.PathLike[str],
    *,
    module: torch.nn.Module,
    example_input: torch.Tensor,
    input_spec: dict[str, Any],
    params: dict[str, Any],
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    source: dict[str, Any],
    labels: list[str],
    architecture: str,
) -> dict[str, Any]:
    """Write a one-input classifier described by a version-1 ``input_spec``.

    Kept for scripts written before :func:`lakekit.models.save_model`, which is the API to
    use: this is ``save_model`` with the signature's names and the preprocessing derived from
    ``input_spec`` as :func:`lakekit.signature.from_input_spec` does for version-1 records.

    Args:
        output_path: the model's Lance path; an existing model record gets a new version.
        module: the trained network.
        example_input: a float batch shaped like real inputs (N, *input_spec["shape"]).
        input_spec: how raw inputs become the module's input (shape, dtype, scale, mean, std).
        params: the training parameters.
        metrics: final metrics (JSON-serialisable numbers).
        history: per-epoch metrics.
        source: the training data: {"path", "name", "version"}.
        labels: class labels, index = class id.
        architecture: a short human description of the network.

    Returns:
        A summary: path, name, version, weights_bytes, num_parameters, created_at.

    Raises:
        ValueError: the module cannot be exported, or does not survive the round trip.
        InvalidRequest: ``output_path`` holds a Lance dataset that is not a model record.
    """
    from lakekit import models

    names = sig.from_input_spec(input_spec, labels)
    return models.save_model(
        output_path,
        module,
        example_input,
        input_names=[names["inputs"][0]["name"]],
        output_names=[names["outputs"][0]["name"]],
        labels=labels,
        preprocessing=sig.preprocessing_from_input_spec(input_spec),
        params=params,
        metrics=metrics,
        history=history,
        source=source,
        architecture=architecture,
        input_spec=input_spec,
    )


def read_model_info(
    path: str | os.PathLike[str],
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything in the record but the weight bytes; cheap (the weights are not read).

    Args:
        path: the model's Lance path or URI.
        version: a Lance version of the record (default: the latest).
        storage_options: Lance storage options for an object store URI.

    Returns:
        The record's columns (JSON columns decoded) plus ``path`` and ``version``; a
        version-1 record gets the ``signature`` and ``preprocessing`` its input_spec implies.

    Raises:
        ModelNotFound: nothing at ``path`` (or no such version).
        InvalidRequest: ``path`` is not a model record.
    """
    path = os.fspath(path)
    ds = _open(path, version, storage_options)
    return _info_from_row(_row(ds, INFO_COLUMNS, path), ds, path)


def read_weights(
    path: str | os.PathLike[str],
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """The checked weight bytes and the info of a record.

    Raises:
        ModelNotFound: nothing at ``path`` (or no such version).
        InvalidRequest: not a model record, an unknown format, or weights that do not match
            their checksum.
    """
    path = os.fspath(path)
    ds = _open(path, version, storage_options)
    row = _row(ds, [*INFO_COLUMNS, "weights"], path)
    weights = row.pop("weights")
    info = _info_from_row(row, ds, path)
    if info["format"] != FORMAT:
        raise InvalidRequest(f"{path}: unsupported model format {info['format']!r}")
    if weights is None or hashlib.sha256(weights).hexdigest() != info["weights_sha256"]:
        raise InvalidRequest(f"{path}: weights do not match their checksum")
    return weights, info


def load_model(
    path: str | os.PathLike[str],
    device: str = "cpu",
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> LoadedModel:
    """Rebuild the model from its record alone (no model class is imported).

    Args:
        path: the model's Lance path or URI.
        device: torch device to load onto, e.g. "cpu" or "cuda".
        version: a Lance version of the record (default: the latest).
        storage_options: Lance storage options for an object store URI.

    Raises:
        ModelNotFound: nothing at ``path`` (or no such version).
        InvalidRequest: ``path`` is not a model record, or its weights are corrupt.
    """
    from lakekit.export import rebuild

    weights, info = read_weights(path, version, storage_options)
    try:
        module = rebuild(weights, device)
    except Exception as exc:
        raise InvalidRequest(f"{info['path']}: cannot rebuild the model: {exc}") from exc
    return LoadedModel(
        module=module,
        input_spec=info["input_spec"],
        labels=info["labels"],
        info=info,
        device=device,
    )
