"""A saved model that also answers an embedding: a named layer of its exported graph.

A model record holds a ``torch.export`` program, so no model class is needed to reach an inner
layer: the program's graph gets one more output (the chosen node) and runs as before, in one
forward pass. The default layer is the input of the last linear layer, the penultimate layer
of a classifier (for the MNIST CNN: the 128 features after its hidden ReLU).

Rows of a dataset become the model's input the way training fed them: image columns by their
field metadata and the record's ``preprocessing`` (scale, mean, std), numeric list columns as
they are.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.fx

from lakeapi.errors import InvalidRequest
from lakekit import modelrec

PENULTIMATE = "penultimate"
_LINEAR = ("aten.linear.default", "aten.addmm.default", "aten.matmul.default", "aten.mm.default")


class EmbeddingModel:
    """A model record loaded with an extra output: ``forward(x) -> (first output, embedding)``.

    Args:
        path: the model's Lance URI.
        version: the record's Lance version (default: latest).
        layer: a graph node's name, one of the model's output names, or ``penultimate``.
        device: a torch device.

    Raises:
        ModelNotFound: nothing at ``path``.
        InvalidRequest: not a model record, or no such layer.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        version: int | None = None,
        layer: str | None = None,
        device: str = "cpu",
        storage_options: dict[str, str] | None = None,
    ) -> None:
        weights, info = modelrec.read_weights(path, version, storage_options)
        self.info: dict[str, Any] = info
        self.path = os.fspath(path)
        self.version = int(info["version"])
        self.layer = layer or PENULTIMATE
        self.device = device
        program = torch.export.load(io.BytesIO(weights))
        if torch.device(device).type != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, device)
        self.module = program.module()
        self._add_output(self.layer)

    def _add_output(self, layer: str) -> None:
        graph = self.module.graph
        output = next(n for n in graph.nodes if n.op == "output")
        flat = output.args[0]
        outputs = list(flat) if isinstance(flat, tuple | list) else [flat]
        names = [s.get("name") for s in (self.info.get("signature") or {}).get("outputs", [])]
        if layer in names:
            target = outputs[names.index(layer)]
        elif layer == PENULTIMATE:
            linear = [
                n for n in graph.nodes if n.op == "call_function" and str(n.target) in _LINEAR
            ]
            if not linear:
                raise InvalidRequest(f"{self.path}: no linear layer; name a layer")
            last = linear[-1]
            # addmm(bias, x, weight): the features are its second argument.
            target = last.args[1] if str(last.target) == "aten.addmm.default" else last.args[0]
        else:
            found = [n for n in graph.nodes if n.name == layer and n.op == "call_function"]
            if not found:
                known = [n.name for n in graph.nodes if n.op == "call_function"]
                raise InvalidRequest(f"{self.path}: no layer {layer!r}; it has {known}")
            target = found[0]
        output.args = ((*outputs, target),)
        # The program's pytree codegen expects its own outputs; a plain tuple takes one more.
        graph._codegen = torch.fx.graph.CodeGen()
        self.module.recompile()

    @property
    def labels(self) -> list[str]:
        return list(self.info.get("labels") or [])

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first output and the embedding (flattened per row) of a batch."""
        tensor = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        with torch.inference_mode():
            *outputs, embedding = self.module(tensor)
        first = outputs[0].detach().float().cpu().numpy()
        emb = embedding.detach().float().cpu().reshape(len(x), -1).numpy()
        return first, emb


def predictions(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the best class and its softmax probability."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    return best.astype(np.int64), probs[np.arange(len(best)), best].astype(np.float32)


def model_inputs(
    column: pa.Array | pa.ChunkedArray,
    field_metadata: Mapping[bytes, bytes] | None,
    info: Mapping[str, Any],
) -> np.ndarray:
    """A dataset column as the model's one input, preprocessed as training did."""
    preprocessing = info.get("preprocessing") or {}
    if preprocessing.get("kind") == "image":
        from lakekit.training import images_to_numpy  # torch is loaded already

        images = images_to_numpy(column, dict(field_metadata or {}))
        return image_inputs(images, preprocessing, (field_metadata or {}).get(b"mnist:scale"))
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    try:
        values = np.stack(arr.to_numpy(zero_copy_only=False)).astype(np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"the input column is not numeric vectors: {exc}") from None
    return values


def image_inputs(
    images: np.ndarray, preprocessing: Mapping[str, Any], stored_scale: bytes | None = None
) -> np.ndarray:
    """(N, 28, 28) pixels (uint8, or floats with their own scale) -> (N, 1, 28, 28) float32."""
    x = images.astype(np.float32)
    # uint8 pixels are 0..255 whatever the ingestion did; floats carry their own scale.
    if images.dtype == np.uint8:
        x *= np.float32(preprocessing.get("scale", 1 / 255))
    elif stored_scale is not None:
        x *= np.float32(float(stored_scale))
    x -= np.float32(preprocessing.get("mean", 0.0))
    x /= np.float32(preprocessing.get("std", 1.0))
    return x.reshape(len(images), 1, *images.shape[1:])
