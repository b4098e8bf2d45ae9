"""A model's signature: its named inputs and outputs, each with a dtype and a shape.

Stored as JSON in the model record's ``signature`` column::

    {"inputs":  [{"name": "features", "dtype": "float32", "shape": [-1, 8]}],
     "outputs": [{"name": "logits",   "dtype": "float32", "shape": [-1, 3]}]}

- ``dtype`` is a numpy dtype name (:data:`DTYPES` lists them, with the Open Inference
  Protocol's name for each).
- ``shape`` includes the batch dimension, always first and always ``-1``; any other ``-1`` is a
  dimension that may vary from call to call (a sequence's length, say).
- The network is called with the inputs as positional arguments, in this order, and returns
  the outputs in this order (one tensor when there is one output).
- Labels, when the record has them, name the classes along the last dimension of the first
  output.

Nothing here imports torch: the platform validates records and requests with this module
alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lakeapi.errors import InvalidRequest

# numpy dtype name -> Open Inference Protocol (KServe v2 / Triton) datatype.
DTYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "bfloat16": "BF16",
    "float32": "FP32",
    "float64": "FP64",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# What a version-1 record's input_spec names its one input and output, for image models.
IMAGE_INPUT, IMAGE_OUTPUT = "image", "logits"


def tensor_spec(name: str, dtype: str, shape: Sequence[int]) -> dict[str, Any]:
    """One input or output entry: ``{"name", "dtype", "shape"}``."""
    return {"name": name, "dtype": dtype, "shape": [int(d) for d in shape]}


def problem(signature: Any) -> str | None:
    """What is wrong with ``signature`` (None when it is valid)."""
    if not isinstance(signature, Mapping):
        return "signature must be an object with inputs and outputs"
    for side in ("inputs", "outputs"):
        entries = signature.get(side)
        if not isinstance(entries, list) or not entries:
            return f"signature.{side} must be a non-empty list"
        names = set()
        for i, entry in enumerate(entries):
            where = f"signature.{side}[{i}]"
            if not isinstance(entry, Mapping):
                return f"{where} must be an object with name, dtype and shape"
            name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
            if not isinstance(name, str) or not _NAME.match(name):
                return f"{where}.name {name!r} is not a valid name (letters, digits, _.-)"
            if name in names:
                return f"{where}: {side[:-1]} name {name!r} appears twice"
            names.add(name)
            if dtype not in DTYPES:
                return f"{where} ({name}): dtype {dtype!r} is not one of {sorted(DTYPES)}"
            if (
                not isinstance(shape, list)
                or not shape
                or any(isinstance(d, bool) or not isinstance(d, int) for d in shape)
            ):
                return f"{where} ({name}): shape must be a non-empty list of integers"
            if shape[0] != -1:
                return f"{where} ({name}): the first dimension is the batch and must be -1"
            if any(d < 1 and d != -1 for d in shape):
                return f"{where} ({name}): dimensions are positive, or -1 when they vary"
    return None


def labels_problem(signature: Mapping[str, Any], labels: Sequence[str] | None) -> str | None:
    """What is wrong with ``labels`` for this (valid) signature, or None."""
    if not labels:
        return None
    first = signature["outputs"][0]
    size = first["shape"][-1] if len(first["shape"]) > 1 else None
    if size != len(labels):
        return (
            f"{len(labels)} labels, but the first output {first['name']!r} has shape "
            f"{first['shape']}: its last dimension must have one entry per label"
        )
    return None


def from_input_spec(input_spec: Mapping[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """The signature a version-1 record implies: one input shaped ``input_spec``, one output.

    Version-1 records were all classifiers whose one output holds one logit per label.
    """
    image = is_image_spec(input_spec)
    shape = [-1, *(int(d) for d in input_spec.get("shape", []))]
    return {
        "inputs": [
            tensor_spec(
                IMAGE_INPUT if image else "input", str(input_spec.get("dtype", "float32")), shape
            )
        ],
        "outputs": [tensor_spec(IMAGE_OUTPUT if image else "output", "float32", [-1, len(labels)])],
    }


def is_image_spec(input_spec: Mapping[str, Any]) -> bool:
    """Whether a version-1 input_spec describes the MNIST image path (1x28x28 floats)."""
    return list(input_spec.get("shape", [])) == [1, 28, 28] or input_spec.get("layout") == "mnist"


def preprocessing_from_input_spec(input_spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The preprocessing a version-1 record implies: ``kind: image`` for image models."""
    if not is_image_spec(input_spec):
        return None
    extra = {k: v for k, v in input_spec.items() if k not in ("shape", "dtype")}
    return {"kind": "image", **extra}


def input_spec_of(signature: Mapping[str, Any], preprocessing: Mapping[str, Any] | None) -> dict:
    """The version-1 ``input_spec`` column for a signature, so older readers keep working.

    One input: its shape without the batch dimension and its dtype, plus the preprocessing's
    parameters for image models (what the MNIST image path reads). Several inputs: each by name.
    """
    inputs = signature["inputs"]
    if len(inputs) > 1:
        return {
            "inputs": {i["name"]: {"shape": i["shape"][1:], "dtype": i["dtype"]} for i in inputs}
        }
    spec: dict[str, Any] = {"shape": inputs[0]["shape"][1:], "dtype": inputs[0]["dtype"]}
    if preprocessing and preprocessing.get("kind") == "image":
        spec.update({k: v for k, v in preprocessing.items() if k != "kind"})
    return spec


def preprocessing_problem(
    preprocessing: Any, signature: Mapping[str, Any] | None = None
) -> str | None:
    """What is wrong with a preprocessing spec (None, or ``{"kind": "image", ...}``)."""
    if preprocessing is None:
        return None
    if not isinstance(preprocessing, Mapping) or "kind" not in preprocessing:
        return "preprocessing must be null or an object with a kind"
    kind = preprocessing["kind"]
    if kind != "image":
        return f"preprocessing kind {kind!r} is not known (known: 'image', or none)"
    for key in ("scale", "mean", "std"):
        value = preprocessing.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value != value
        ):
            return f"preprocessing.{key} must be a number"
    if preprocessing.get("std", 1) <= 0:
        return "preprocessing.std must be positive"
    if signature is not None:
        inputs = signature["inputs"]
        if len(inputs) != 1 or inputs[0]["dtype"] != "float32":
            return "image preprocessing needs exactly one float32 input"
    return None


def check_inputs(signature: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[np.ndarray]:
    """The arrays for the signature's inputs, in order, checked for dtype and shape.

    Args:
        signature: a valid signature.
        inputs: input name -> array-like (lists are converted to the input's dtype).

    Raises:
        InvalidRequest: a missing or unknown input, a wrong dtype, or a wrong shape; the
            message names the input and what it expects.
    """
    expected = {i["name"]: i for i in signature["inputs"]}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise InvalidRequest(f"unknown inputs {unknown}; the model takes {sorted(expected)}")
    arrays, batch = [], None
    for name, spec in expected.items():
        if name not in inputs:
            raise InvalidRequest(f"input {name!r} is missing; the model takes {sorted(expected)}")
        value = inputs[name]
        # numpy has no bfloat16: such inputs travel as float32 and are cast on the device.
        want = np.dtype("float32" if spec["dtype"] == "bfloat16" else spec["dtype"])
        if isinstance(value, np.ndarray):
            if value.dtype != want:
                raise InvalidRequest(
                    f"input {name!r} has dtype {value.dtype}, expected {spec['dtype']}"
                )
            array = value
        else:
            try:
                array = np.asarray(value, dtype=want)
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(f"input {name!r} is not {spec['dtype']} data: {exc}") from None
        shape = spec["shape"]
        if array.ndim != len(shape) or any(
            d != -1 and d != actual for d, actual in zip(shape, array.shape, strict=True)
        ):
            raise InvalidRequest(
                f"input {name!r} has shape {list(array.shape)}, expected {shape} (-1: any size)"
            )
        if batch is not None and array.shape[0] != batch:
            raise InvalidRequest(
                f"input {name!r} has batch size {array.shape[0]}, the other inputs {batch}"
            )
        batch = array.shape[0]
        arrays.append(array)
    return arrays
