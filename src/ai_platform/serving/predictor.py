"""The generic model runner: any saved model, tensors in and tensors out, checked against its
signature; and ``Predictor``, the MNIST image classifier, as a codec over the same runner.

A model's signature (named inputs and outputs, each a dtype and a shape whose first dimension
is the batch, ``-1``; any other ``-1`` may vary) comes from the record (``signature`` column,
record_version 2) or, for version-1 records, from ``input_spec`` and ``labels``; outputs a
version-1 record does not describe are learnt from two trial passes at load time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch

from lakeapi.errors import InvalidRequest
from lakekit import datasets, modelrec
from lakekit.images import SIDE, ImageCodec

Row = tuple[np.ndarray, ...]  # one batch row of every input (or output), batch dim dropped
_INT_KINDS = "iub"
# Sizes the variable dimensions get in the trial passes (two, to tell which outputs vary).
_TRIAL_SIZES = (2, 3)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: a name, a numpy dtype name, a shape (-1: any size)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def fits(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns; ``labels`` name the first output's last dimension."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] = ()
    preprocessing: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_image(self) -> bool:
        return (self.preprocessing or {}).get("kind") == "image"

    @property
    def is_classifier(self) -> bool:
        """Labelled, and the first output is (N, labels): one logit per label and row."""
        first = self.outputs[0] if self.outputs else None
        return bool(self.labels) and first is not None and first.shape[1:] == (len(self.labels),)


def _spec(entry: Mapping[str, Any], where: str) -> TensorSpec:
    try:
        name, dtype, shape = str(entry["name"]), str(entry["dtype"]), entry["shape"]
        if dtype != "bfloat16":
            np.dtype(dtype)  # a dtype numpy knows, or TypeError
        dims = tuple(int(d) for d in shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"{where}: bad signature entry {entry!r}: {exc}") from None
    if not dims or dims[0] != -1 or any(d < 1 and d != -1 for d in dims):
        raise InvalidRequest(f"{where}: {name}'s shape {list(dims)} must start with -1 (batch)")
    return TensorSpec(name, dtype, dims)


def signature_of(info: Mapping[str, Any]) -> Signature:
    """The signature of a model record's info (``modelrec.read_model_info``).

    A version-1 record (no ``signature``) has one input shaped ``input_spec`` (named
    ``image`` for 1x28x28 image models, else ``input``) and, when it has labels, one output of
    a logit per label; without labels its outputs are left empty for the runner to learn.

    Raises:
        InvalidRequest: a signature that is not one.
    """
    where = str(info.get("path") or info.get("name") or "model")
    labels = tuple(str(label) for label in info.get("labels") or ())
    declared = info.get("signature")
    if isinstance(declared, Mapping):
        inputs = tuple(_spec(e, where) for e in declared.get("inputs") or ())
        outputs = tuple(_spec(e, where) for e in declared.get("outputs") or ())
        if not inputs or not outputs:
            raise InvalidRequest(f"{where}: the signature needs inputs and outputs")
        return Signature(inputs, outputs, labels, info.get("preprocessing"))
    return _v1_signature(info.get("input_spec") or {}, labels, where)


def _v1_signature(spec: Mapping[str, Any], labels: tuple[str, ...], where: str) -> Signature:
    """What a version-1 ``input_spec`` (one input, without its batch dimension) implies."""
    shape = [int(d) for d in spec.get("shape", [])]
    image = shape == [1, SIDE, SIDE] or spec.get("layout") == "mnist"
    preprocessing = None
    if image:
        extra = {k: v for k, v in spec.items() if k not in ("shape", "dtype")}
        preprocessing = {"kind": "image", **extra}
    entry = {
        "name": "image" if image else "input",
        "dtype": spec.get("dtype", "float32"),
        "shape": [-1, *shape],
    }
    outputs: tuple[TensorSpec, ...] = ()
    if labels:
        outputs = (TensorSpec("logits" if image else "output", "float32", (-1, len(labels))),)
    return Signature((_spec(entry, where),), outputs, labels, preprocessing)


def as_input(spec: TensorSpec, value: Any, datatype_given: bool = False) -> np.ndarray:
    """``value`` as the array ``spec`` takes, or a 400 naming the input and what it expects.

    Args:
        spec: the input.
        value: an array (its dtype must be the input's) or nested lists of numbers.
        datatype_given: the client declared the dtype (an array must then match exactly).
    """
    want = np.dtype("float32" if spec.dtype == "bfloat16" else spec.dtype)
    if isinstance(value, np.ndarray):
        if value.dtype != want and (datatype_given or value.dtype.kind != want.kind):
            raise InvalidRequest(
                f"input {spec.name!r} has dtype {value.dtype}, expected {spec.dtype}"
            )
        array = value.astype(want, copy=False)
    else:
        try:
            parsed = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise InvalidRequest(f"input {spec.name!r} is not a regular array: {exc}") from None
        if parsed.dtype.kind not in "iufb" or (
            want.kind in _INT_KINDS and parsed.dtype.kind == "f"
        ):
            raise InvalidRequest(
                f"input {spec.name!r} holds {parsed.dtype.name} values, expected {spec.dtype}"
            )
        array = parsed.astype(want)
    if not spec.fits(array.shape):
        raise InvalidRequest(
            f"input {spec.name!r} has shape {list(array.shape)}, expected {list(spec.shape)} "
            "(-1: any size)"
        )
    return array


def classify(logits: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    """Per row of (N, classes) logits: the best class id, its probability, all of them."""
    shifted = np.exp(logits.astype(np.float32) - logits.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    best = probs.argmax(axis=-1)
    return [
        {
            "prediction": int(best[i]),
            "confidence": float(probs[i, best[i]]),
            "probabilities": probs[i].tolist(),
        }
        for i in range(len(probs))
    ]


class Runner:
    """A saved model, loaded once: batches of arrays in, batches of arrays out."""

    def __init__(self, model_path: str | os.PathLike[str], device: str = "cpu") -> None:
        """Load the record at ``model_path`` and run it once on a trial input.

        Raises:
            ModelNotFound: nothing at ``model_path``.
            InvalidRequest: not a model record, or one that fails on its own signature.
        """
        started = time.perf_counter()
        self.model_path = os.fspath(model_path)
        self.device = device
        # A model server started on an S3 lake gets its storage options as a task would.
        self.model = modelrec.load_model(
            self.model_path, device=device, storage_options=datasets.storage_options() or None
        )
        self.info: dict[str, Any] = self.model.info
        declared = signature_of(self.info)
        self.signature = declared  # what the trial passes feed
        learnt = self._trial(declared)
        if declared.outputs and len(declared.outputs) != len(learnt):
            raise InvalidRequest(
                f"{self.model_path}: the signature declares {len(declared.outputs)} outputs, "
                f"the network returns {len(learnt)}"
            )
        self.signature = Signature(
            declared.inputs, declared.outputs or learnt, declared.labels, declared.preprocessing
        )
        self.load_seconds = time.perf_counter() - started

    def _trial(self, signature: Signature) -> tuple[TensorSpec, ...]:
        """Run zeros through the network at two sizes: the outputs it gives, -1 where they vary."""
        shapes = []
        for size in _TRIAL_SIZES:
            arrays = [
                np.zeros(
                    [1 if i == 0 else size if d == -1 else d for i, d in enumerate(s.shape)],
                    dtype="float32" if s.dtype == "bfloat16" else s.dtype,
                )
                for s in signature.inputs
            ]
            try:
                outputs = self.run(arrays)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{self.model_path}: {exc.message}") from None
            shapes.append([(o.shape, o.dtype.name) for o in outputs])
        names = [f"output_{i}" for i in range(len(shapes[0]))] if len(shapes[0]) > 1 else ["output"]
        return tuple(
            TensorSpec(
                name,
                dtype,
                (-1, *(a if a == b else -1 for a, b in zip(sa[1:], sb[1:], strict=True))),
            )
            for name, (sa, dtype), (sb, _) in zip(names, shapes[0], shapes[1], strict=True)
        )

    def check(self, inputs: Mapping[str, Any], datatypes_given: bool = False) -> list[np.ndarray]:
        """The arrays for the signature's inputs, in order, each checked; one batch size.

        Raises:
            InvalidRequest: a missing or unknown input, a wrong dtype or shape.
        """
        expected = [s.name for s in self.signature.inputs]
        unknown = sorted(set(inputs) - set(expected))
        if unknown:
            raise InvalidRequest(f"unknown inputs {unknown}; the model takes {expected}")
        arrays = []
        for spec in self.signature.inputs:
            if spec.name not in inputs:
                raise InvalidRequest(f"input {spec.name!r} is missing; the model takes {expected}")
            arrays.append(as_input(spec, inputs[spec.name], datatypes_given))
        sizes = {a.shape[0] for a in arrays}
        if len(sizes) > 1:
            raise InvalidRequest(
                f"the inputs {expected} have different batch sizes {sorted(sizes)}"
            )
        if 0 in sizes:
            raise InvalidRequest("the inputs hold no rows")
        return arrays

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One forward pass over a checked batch; the outputs in order, as numpy arrays.

        Raises:
            InvalidRequest: the network refused these inputs (e.g. a length it cannot take).
        """
        tensors = []
        for spec, array in zip(self.signature.inputs, arrays, strict=True):
            array = np.ascontiguousarray(array)
            if not array.flags.writeable:  # a view of the request's bytes: torch wants its own
                array = array.copy()
            tensor = torch.from_numpy(array).to(self.device)
            tensors.append(tensor.to(torch.bfloat16) if spec.dtype == "bfloat16" else tensor)
        try:
            with torch.inference_mode():
                result = self.model.module(*tensors)
        except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
            # torch.export's guards raise AssertionError on shapes the program cannot take.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidRequest(f"the model cannot run on these inputs: {first}") from None
        if isinstance(result, torch.Tensor):
            values = [result]
        elif isinstance(result, Mapping):
            values = list(result.values())
        else:
            values = list(result)
        batch = arrays[0].shape[0]
        outputs = []
        for value in values:
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()  # numpy has no bfloat16
            if value.dim() == 0 or value.shape[0] != batch:
                raise InvalidRequest(
                    f"the model gave an output of shape {list(value.shape)} "
                    f"for a batch of {batch}: not one row per input row"
                )
            outputs.append(value.numpy())
        return outputs

    def forward(self, rows: Sequence[Row]) -> Sequence[Row]:
        """The batcher's pass: rows of all requests, stacked into as few batches as their shapes
        allow (consecutive rows of equal shapes), each row's outputs in order.

        A ``RowBlock`` (one request that had the pass to itself) runs as the arrays it holds,
        and its outputs come back as a ``RowBlock``: no per-row splitting and restacking.
        """
        if isinstance(rows, RowBlock):
            return RowBlock(self.run(rows.arrays))
        answers: list[Row] = []
        start = 0
        while start < len(rows):
            shapes = [a.shape for a in rows[start]]
            end = start + 1
            while end < len(rows) and [a.shape for a in rows[end]] == shapes:
                end += 1
            group = rows[start:end]
            outputs = self.run([np.stack([r[i] for r in group]) for i in range(len(shapes))])
            answers.extend(tuple(o[j] for o in outputs) for j in range(len(group)))
            start = end
        return answers


class RowBlock(Sequence[Row]):
    """A batch (one array per input or output, equal first dimensions) seen as its rows.

    What the data plane hands the batcher: a request alone in its pass runs straight from
    these arrays; only when requests share a pass are their rows taken one by one.
    """

    __slots__ = ("arrays",)

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> RowBlock: ...

    def __getitem__(self, index: int | slice) -> Row | RowBlock:
        if isinstance(index, slice):
            return RowBlock([a[index] for a in self.arrays])
        return tuple(a[index] for a in self.arrays)


def rows_of(arrays: Sequence[np.ndarray]) -> RowBlock:
    """A batch (one array per input) as rows for the batcher."""
    return RowBlock(arrays)


def stack_rows(rows: Sequence[Row]) -> list[np.ndarray]:
    """The batcher's answer rows back into one array per output."""
    if isinstance(rows, RowBlock):
        return rows.arrays
    return [np.stack(column) for column in zip(*rows, strict=True)]


class Predictor:
    """A model from the lake, ready to classify 28x28 uint8 images (the image codec)."""

    def __init__(self, model_path: str | os.PathLike[str] | Runner, device: str = "cpu") -> None:
        """Load the model record at ``model_path`` (or use a loaded runner).

        Raises:
            ModelNotFound: nothing at ``model_path``.
            InvalidRequest: not a model record, or not an image classifier.
        """
        self.runner = model_path if isinstance(model_path, Runner) else Runner(model_path, device)
        signature = self.runner.signature
        where = self.runner.model_path
        if not signature.is_image or len(signature.inputs) != 1 or not signature.is_classifier:
            raise InvalidRequest(f"{where}: unsupported input spec: not an image classifier")
        (spec,) = signature.inputs
        assert signature.preprocessing is not None
        self.codec = ImageCodec(signature.preprocessing, list(spec.shape), spec.dtype, where)

    @property
    def info(self) -> dict[str, Any]:
        """The record's metadata (no weights)."""
        return self.runner.info

    def encode(self, images: Sequence[np.ndarray] | np.ndarray) -> RowBlock:
        """The runner's rows for the images (checked: (28, 28) uint8 each)."""
        return RowBlock([self.codec.encode(images)])

    def answer(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """The classifier's answers for the runner's output rows."""
        if not rows:
            return []
        return classify(stack_rows(rows)[0], self.runner.signature.labels)

    def predict(self, images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Classify a batch in one forward pass.

        Args:
            images: (28, 28) uint8 arrays, white digit on black.

        Returns:
            One ``{"prediction", "confidence", "probabilities"}`` per image, in order.

        Raises:
            InvalidRequest: an image that is not a (28, 28) uint8 array.
        """
        return self.answer(self.runner.forward(self.encode(images)))
