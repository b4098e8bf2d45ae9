"""The model record: one Lance dataset per model, one row, one Lance version per (re-)train.

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
input_spec          string (JSON)  e.g. {"shape": [1, 28, 28], "dtype": "float32",
                                   "scale": 1/255, "mean": 0.1307, "std": 0.3081}
labels              list<string>   class labels, index = class id
params              string (JSON)  training parameters
metrics             string (JSON)  final metrics
history             string (JSON)  one dict per epoch
source              string (JSON)  {"path", "name", "version"} of the training dataset
framework           string (JSON)  torch / python / pylance versions
created_at          string         UTC ISO 8601
record_version      int32          version of this layout (1)
==================  =============  =====================================================

The schema metadata ``lakekit:record = model`` marks a dataset as a model record.

Importing this module does not import torch (the Data Platform lists models with
:func:`read_model_info` alone); writing and loading do.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import lance
import pyarrow as pa

from lakeapi.errors import InvalidRequest, ModelNotFound

if TYPE_CHECKING:
    import torch

RECORD_VERSION = 1
FORMAT = "torch.export"
_MARKER_KEY = b"lakekit:record"
_MARKER_VALUE = b"model"
_JSON_COLUMNS = ("input_spec", "params", "metrics", "history", "source", "framework")

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
        pa.field("labels", pa.list_(pa.string())),
        pa.field("params", pa.string()),
        pa.field("metrics", pa.string()),
        pa.field("history", pa.string()),
        pa.field("source", pa.string()),
        pa.field("framework", pa.string()),
        pa.field("created_at", pa.string()),
        pa.field("record_version", pa.int32()),
    ],
    metadata={_MARKER_KEY: _MARKER_VALUE, b"lakekit:record_version": str(RECORD_VERSION).encode()},
)
INFO_COLUMNS = [f.name for f in SCHEMA if f.name != "weights"]


@dataclass
class LoadedModel:
    """A model rebuilt from its record; ``module`` maps a float (N, *shape) batch to logits."""

    module: torch.nn.Module
    input_spec: dict[str, Any]
    labels: list[str]
    info: dict[str, Any] = field(default_factory=dict)


@cache
def _inference_class() -> type:
    import torch

    class Inference(torch.nn.Module):
        """Wraps an exported program's module so that ``eval()`` and ``.training`` behave.

        ``ExportedProgram.module()`` raises on ``train()``/``eval()``; the program was exported
        in eval mode already, so only eval is meaningful here.
        """

        def __init__(self, program: torch.nn.Module) -> None:
            super().__init__()
            self.program = program
            self.training = False

        def train(self, mode: bool = True) -> Inference:
            if mode:
                raise RuntimeError("a model loaded from the lake is inference-only")
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.program(x)

    return Inference


def model_name(path: str | os.PathLike[str]) -> str:
    """The model's name: the last path component without ``.lance``."""
    base = os.path.basename(os.fspath(path).rstrip("/"))
    return base[: -len(".lance")] if base.endswith(".lance") else base


def export_module(module: torch.nn.Module, example_input: torch.Tensor) -> bytes:
    """Serialise ``module`` (in eval mode, on CPU) as a PT2 archive with a dynamic batch dim.

    Raises:
        ValueError: the module cannot be exported.
    """
    import torch

    # A CPU copy: the caller's module keeps its device and mode.
    module = copy.deepcopy(module).to("cpu").eval()
    # A copy: a view would drag its whole base storage into the archive as example input.
    example = example_input.detach().to("cpu").clone()
    if example.shape[0] < 2:
        # torch.export specialises a dimension whose example size is 0 or 1.
        example = example.expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:
        raise ValueError(f"cannot export the model with torch.export: {exc}") from exc
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _rebuild(weights: bytes, device: str) -> torch.nn.Module:
    import torch

    program = torch.export.load(io.BytesIO(weights))
    if torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return _inference_class()(program.module())


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


def _open(path: str | os.PathLike[str], version: int | None = None) -> lance.LanceDataset:
    """Open a model record; ModelNotFound if nothing is there, InvalidRequest if not a model."""
    path = os.fspath(path)
    if "://" not in path and (
        not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path))
    ):
        raise ModelNotFound(f"no model at {path}")
    try:
        ds = lance.dataset(path, version=version)
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
    missing = [name for name in SCHEMA.names if name not in schema.names]
    if (schema.metadata or {}).get(_MARKER_KEY) != _MARKER_VALUE or missing:
        detail = f"missing columns {missing}" if missing else "no lakekit:record=model marker"
        raise InvalidRequest(f"{path} is not a model record ({detail})")


def _row(ds: lance.LanceDataset, columns: list[str], path: str) -> dict[str, Any]:
    rows = ds.to_table(columns=columns, limit=2).to_pylist()
    if len(rows) != 1:
        raise InvalidRequest(f"{path} is not a model record (it holds {len(rows)} rows, not 1)")
    return rows[0]


def _info_from_row(row: dict[str, Any], ds: lance.LanceDataset, path: str) -> dict[str, Any]:
    info = dict(row)
    for name in _JSON_COLUMNS:
        try:
            info[name] = json.loads(info[name]) if info[name] is not None else None
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{path}: column {name} is not valid JSON") from exc
    info["path"] = path
    info["version"] = ds.version
    return info


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
    """Write (or re-write, as a new Lance version) the model record at ``output_path``.

    The module is exported in eval mode; the record is checked to rebuild into a module that
    gives the same outputs on ``example_input`` before anything is written.

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
    path = os.fspath(output_path)
    weights = export_module(module, example_input)
    _check_round_trip(module, weights, example_input)
    exists = "://" in path or os.path.exists(path)
    if exists:
        try:
            _open(path)
        except ModelNotFound:
            exists = False
        # An existing non-model dataset raises InvalidRequest here: never overwrite data.
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        "name": model_name(path),
        "architecture": architecture,
        "format": FORMAT,
        "weights": weights,
        "weights_bytes": len(weights),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "num_parameters": sum(p.numel() for p in module.parameters()),
        "input_spec": _dumps(input_spec),
        "labels": [str(label) for label in labels],
        "params": _dumps(params),
        "metrics": _dumps(metrics),
        "history": _dumps(history),
        "source": _dumps(source),
        "framework": _dumps(_framework()),
        "created_at": created_at,
        "record_version": RECORD_VERSION,
    }
    table = pa.Table.from_pylist([record], schema=SCHEMA)
    ds = lance.write_dataset(table, path, mode="overwrite" if exists else "create")
    return {
        "path": path,
        "name": record["name"],
        "version": ds.version,
        "weights_bytes": record["weights_bytes"],
        "num_parameters": record["num_parameters"],
        "created_at": created_at,
    }


def _check_round_trip(module: torch.nn.Module, weights: bytes, example: torch.Tensor) -> None:
    import torch

    rebuilt = _rebuild(weights, "cpu")
    original = copy.deepcopy(module).to("cpu").eval()
    with torch.inference_mode():
        expected = original(example.to("cpu"))
        got = rebuilt(example.to("cpu"))
    if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
        raise ValueError("the exported model does not reproduce the trained model's outputs")


def read_model_info(path: str | os.PathLike[str], version: int | None = None) -> dict[str, Any]:
    """Everything in the record but the weight bytes; cheap (the weights are not read).

    Args:
        path: the model's Lance path.
        version: a Lance version of the record (default: the latest).

    Returns:
        The record's columns (JSON columns decoded) plus ``path`` and ``version``.

    Raises:
        ModelNotFound: nothing at ``path`` (or no such version).
        InvalidRequest: ``path`` is not a model record.
    """
    path = os.fspath(path)
    ds = _open(path, version)
    return _info_from_row(_row(ds, INFO_COLUMNS, path), ds, path)


def load_model(
    path: str | os.PathLike[str], device: str = "cpu", version: int | None = None
) -> LoadedModel:
    """Rebuild the model from its record alone (no model class is imported).

    Args:
        path: the model's Lance path.
        device: torch device to load onto, e.g. "cpu" or "cuda".
        version: a Lance version of the record (default: the latest).

    Raises:
        ModelNotFound: nothing at ``path`` (or no such version).
        InvalidRequest: ``path`` is not a model record, or its weights are corrupt.
    """
    path = os.fspath(path)
    ds = _open(path, version)
    row = _row(ds, [*INFO_COLUMNS, "weights"], path)
    weights = row.pop("weights")
    info = _info_from_row(row, ds, path)
    if info["format"] != FORMAT:
        raise InvalidRequest(f"{path}: unsupported model format {info['format']!r}")
    if weights is None or hashlib.sha256(weights).hexdigest() != info["weights_sha256"]:
        raise InvalidRequest(f"{path}: weights do not match their checksum")
    try:
        module = _rebuild(weights, device)
    except Exception as exc:
        raise InvalidRequest(f"{path}: cannot rebuild the model: {exc}") from exc
    return LoadedModel(
        module=module, input_spec=info["input_spec"], labels=info["labels"], info=info
    )
