"""OIP tensors and numpy: request bodies (JSON, or JSON plus the binary tensor data extension)
to arrays, and arrays to response bodies.

The binary extension: ``Inference-Header-Content-Length: N`` says the body's first N bytes are
the JSON header; the rest is the raw little-endian bytes of every input whose
``parameters.binary_data_size`` is set, in the order the header lists them. Responses do the
same for outputs asked for in binary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from ai_platform.serving.protocol.v2_datamodels import InferenceRequest, RequestInput
from lakeapi.errors import InvalidRequest
from lakekit.signature import DTYPES

HEADER_LENGTH = "inference-header-content-length"
# numpy dtype name -> OIP datatype: those a signature may declare (lakekit.signature), plus
# the unsigned widths torch has no tensors for (refused by the signature check, not here).
# BYTES (length-prefixed strings) is not one a tensor model of ours takes, so it is refused
# like any unknown datatype.
DATATYPES: dict[str, str] = {**DTYPES, "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64"}
NUMPY_OF = {oip: name for name, oip in DATATYPES.items()}


def datatype_of(dtype: str) -> str:
    """The OIP datatype of a numpy dtype name."""
    return DATATYPES.get(dtype, dtype.upper())


def _json_error(what: str, exc: Exception) -> InvalidRequest:
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors()[:3]:
            loc = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{loc or 'body'}: {error.get('msg', 'invalid')}")
        return InvalidRequest(f"{what}: {'; '.join(parts)}")
    return InvalidRequest(f"{what} is not JSON: {exc}")


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The request's JSON header and its binary section (empty without the extension).

    Raises:
        InvalidRequest: a bad header length, or a header that is not an inference request.
    """
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidRequest(
                f"Inference-Header-Content-Length {header_length!r} is not a length within "
                f"the {len(body)}-byte body"
            )
        split = int(header_length)
        body, binary = body[:split], body[split:]
    try:
        request = InferenceRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _json_error("the inference request", exc) from None
    if not request.inputs:
        raise InvalidRequest("the inference request has no inputs")
    return request, binary


def _from_binary(tensor: RequestInput, raw: bytes, dtype: str, count: int) -> np.ndarray:
    item = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    if len(raw) != count * item:
        raise InvalidRequest(
            f"input {tensor.name!r}: shape {tensor.shape} of {tensor.datatype} is "
            f"{count * item} bytes, binary_data_size says {len(raw)}"
        )
    if dtype == "bfloat16":  # the upper half of a float32: widen, as numpy has no bfloat16
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(tensor.shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(tensor.shape)


def _from_json(tensor: RequestInput, dtype: str, count: int) -> np.ndarray:
    if tensor.data is None:
        raise InvalidRequest(f"input {tensor.name!r} has neither data nor binary_data_size")
    want = np.dtype("float32" if dtype == "bfloat16" else dtype)
    try:
        parsed = np.asarray(tensor.data)
    except ValueError as exc:
        raise InvalidRequest(f"input {tensor.name!r}: data is not a regular array: {exc}") from None
    if parsed.size and (
        parsed.dtype.kind not in "iufb" or (want.kind in "iub" and parsed.dtype.kind == "f")
    ):
        raise InvalidRequest(
            f"input {tensor.name!r}: data holds {parsed.dtype.name} values, not {tensor.datatype}"
        )
    if parsed.size != count:
        raise InvalidRequest(
            f"input {tensor.name!r}: shape {tensor.shape} holds {count} elements, data has "
            f"{parsed.size}"
        )
    return parsed.astype(want).reshape(tensor.shape)


def input_arrays(request: InferenceRequest, binary: bytes) -> dict[str, np.ndarray]:
    """Each input as an array of its declared datatype and shape.

    Raises:
        InvalidRequest: an unknown datatype, a bad shape, data that does not fill the shape,
            binary sizes that do not add up to the binary section, or an input given twice.
    """
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        if tensor.name in arrays:
            raise InvalidRequest(f"input {tensor.name!r} is given twice")
        dtype = NUMPY_OF.get(tensor.datatype)
        if dtype is None:
            raise InvalidRequest(
                f"input {tensor.name!r}: datatype {tensor.datatype!r} is not one of "
                f"{sorted(NUMPY_OF)}"
            )
        if any(d < 0 for d in tensor.shape):
            raise InvalidRequest(f"input {tensor.name!r}: shape {tensor.shape} has a negative size")
        count = math.prod(tensor.shape)
        size = tensor.parameters.get("binary_data_size")
        if size is None:
            arrays[tensor.name] = _from_json(tensor, dtype, count)
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidRequest(f"input {tensor.name!r}: binary_data_size {size!r} is not a size")
        if offset + size > len(binary):
            raise InvalidRequest(
                f"input {tensor.name!r}: binary_data_size {size} runs past the "
                f"{len(binary)}-byte binary section"
            )
        arrays[tensor.name] = _from_binary(tensor, binary[offset : offset + size], dtype, count)
        offset += size
    if offset != len(binary):
        raise InvalidRequest(
            f"the binary section is {len(binary)} bytes; the inputs' binary_data_size add up to "
            f"{offset}"
        )
    return arrays


def _binary_of(array: np.ndarray, dtype: str) -> bytes:
    if dtype == "bfloat16":  # back to bfloat16 bits (rounded to nearest even, as torch does)
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return rounded.astype("<u2").tobytes()
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def encode_response(
    header: dict[str, Any],
    outputs: Sequence[tuple[str, str, np.ndarray]],
    binary: Mapping[str, bool],
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length.

    Args:
        header: the response's fields but ``outputs`` (model_name, model_version, id).
        outputs: (name, numpy dtype name, array) of each output to return, in order.
        binary: output name -> whether it goes in the binary section.
    """
    tensors, chunks = [], []
    for name, dtype, array in outputs:
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(dtype),
            "shape": list(array.shape),
        }
        if binary.get(name):
            raw = _binary_of(array, dtype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    head = json.dumps({**header, "outputs": tensors}, separators=(",", ":")).encode()
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)
