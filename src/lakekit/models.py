"""Save a trained model from a script, load it back, and check that a record can be served.

A training script ends with one call::

    from lakekit import datasets, models

    ds = datasets.open_dataset(input_path)
    ...                                   # train `net` on ds
    models.save_model(
        output_path, net, example_batch,  # signature inferred by running net on the example
        input_names=["features"], output_names=["logits"],
        labels=["ok", "worn", "faulty"],  # classes along the first output's last dimension
        params=params, metrics={"test_accuracy": 0.93}, history=history,
        source=ds,                        # the dataset's URI and exact version
    )

What is stored (see :mod:`lakekit.modelrec` for the columns):

- the network as a ``torch.export`` archive: serving needs no model class;
- its **signature** (:mod:`lakekit.signature`): named inputs and outputs, each with a dtype and
  a shape whose first dimension (the batch) is ``-1``; ``dynamic_axes={"tokens": [1]}`` makes
  other dimensions variable (``-1``) too. The signature is read from the exported program, or
  checked against one given as ``signature=``;
- optional ``labels`` and a ``preprocessing`` spec (``{"kind": "image", "scale", "mean",
  "std"}`` for models the image codec feeds; none for tensors in, tensors out);
- params, metrics, history, and the source dataset.

:func:`check_model_record` says what is missing or wrong with a record, or None when it can
be served: the check for the platform to run when a training task ends and before a service
starts (it imports no torch unless asked to load the network).

Importing this module does not import torch; saving and loading do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakeapi.errors import InvalidRequest, ModelNotFound
from lakekit import signature as sig
from lakekit.modelrec import (
    FORMAT,
    RECORD_VERSION,
    LoadedModel,
    load_model,
    read_model_info,
    read_weights,
    write_record,
)

if TYPE_CHECKING:
    import lance
    import torch

__all__ = [
    "LoadedModel",
    "check_model_record",
    "infer_signature",
    "load_model",
    "read_model_info",
    "save_model",
]
# The size a variable (-1) dimension gets in the trial run of ``check_model_record(load=True)``.
_TRIAL_SIZE = 2


def infer_signature(
    module: torch.nn.Module,
    example: torch.Tensor | Sequence[torch.Tensor],
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """The signature ``save_model`` would store for ``module`` (see :func:`save_model`)."""
    from lakekit.export import export

    return export(
        module,
        example,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
    )[1]


def save_model(
    output_path: str | os.PathLike[str],
    module: torch.nn.Module,
    example: torch.Tensor | Sequence[torch.Tensor],
    *,
    signature: dict[str, Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Sequence[int]] | None = None,
    labels: Sequence[str] | None = None,
    preprocessing: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    source: lance.LanceDataset | dict[str, Any] | None = None,
    architecture: str | None = None,
    input_spec: dict[str, Any] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Export ``module`` and write its model record at ``output_path`` (a new version if any).

    The record is checked to rebuild into a network that gives the same outputs on
    ``example`` before anything is written.

    Args:
        output_path: the model's Lance path or URI (the task's ``output_path``).
        module: the trained network; called as ``module(*inputs)``, returning a tensor, a
            tuple of tensors or a dict of tensors. It is not modified (a copy is exported).
        example: a batch of real-looking input, one tensor per input, batch dimension first.
        signature: the expected signature; names and variable dimensions come from it, and
            the exported network must match it. Default: inferred from the example.
        input_names: names of the inputs, in order (default ``input`` / ``input_0``, ...).
        output_names: names of the outputs (default: a dict's keys, ``output``/``output_0``).
        dynamic_axes: input name -> axes besides the batch whose size may vary.
        labels: class names along the last dimension of the first output.
        preprocessing: ``{"kind": "image", "scale", "mean", "std"}`` or None.
        params: the training parameters.
        metrics: final metrics (numbers; tensors and numpy scalars are converted).
        history: one dict per epoch.
        source: the training dataset (as ``lakekit.datasets.open_dataset`` returns it) or
            ``{"path", "name", "version"}``.
        architecture: a short description (default: the module's class name).
        input_spec: the version-1 ``input_spec`` column (default: derived from the signature).
        storage_options: Lance storage options (default: what the platform passed in
            ``LAKEKIT_STORAGE_OPTIONS``).

    Returns:
        A summary: path, name, version, weights_bytes, num_parameters, created_at, signature.

    Raises:
        ValueError: the network cannot be exported, does not survive the round trip, or does
            not match ``signature``; bad names, labels or preprocessing.
        InvalidRequest: ``output_path`` holds a Lance dataset that is not a model record.
    """
    from lakekit import datasets
    from lakekit.export import check_round_trip, export, num_parameters

    # Read first: a bad LAKEKIT_STORAGE_OPTIONS fails before minutes of exporting.
    options = datasets.storage_options() if storage_options is None else storage_options
    if signature is not None:
        problem = sig.problem(signature)
        if problem:
            raise ValueError(problem)
        input_names = [i["name"] for i in signature["inputs"]]
        output_names = [o["name"] for o in signature["outputs"]]
        dynamic_axes = {
            i["name"]: [axis for axis, d in enumerate(i["shape"]) if axis and d == -1]
            for i in signature["inputs"]
        }
    weights, inferred = export(
        module,
        example,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
    )
    if signature is not None:
        _same_signature(signature, inferred)
    check_round_trip(module, weights, example)
    summary = write_record(
        output_path,
        weights=weights,
        signature=inferred,
        num_parameters=num_parameters(module),
        preprocessing=preprocessing,
        labels=labels,
        params=params,
        metrics=metrics,
        history=history,
        source=datasets.source_of(source) if source is not None else None,
        architecture=architecture or type(module).__name__,
        input_spec=input_spec,
        storage_options=options,
    )
    return {**summary, "signature": inferred}


def _same_signature(given: dict[str, Any], inferred: dict[str, Any]) -> None:
    for side in ("inputs", "outputs"):
        if len(given[side]) != len(inferred[side]):
            raise ValueError(
                f"the signature has {len(given[side])} {side}, the network {len(inferred[side])}"
            )
        for want, have in zip(given[side], inferred[side], strict=True):
            if (want["dtype"], want["shape"]) != (have["dtype"], have["shape"]):
                raise ValueError(
                    f"signature {side[:-1]} {want['name']!r} is {want['dtype']} "
                    f"{want['shape']}, the network's is {have['dtype']} {have['shape']}"
                )


def check_model_record(
    uri: str | os.PathLike[str],
    storage_options: dict[str, str] | None = None,
    *,
    load: bool = False,
) -> str | None:
    """What is missing or wrong in the model record at ``uri``; None when it can be served.

    Reads the weight bytes and checks their checksum without importing torch. With ``load``,
    also rebuilds the network and runs it once on zeros shaped by the signature, checking the
    outputs' dtypes and shapes (this imports torch).
    """
    uri = os.fspath(uri)
    try:
        weights, info = read_weights(uri, storage_options=storage_options)
    except ModelNotFound as exc:
        return f"{exc}: the script saved no model (call lakekit.models.save_model)"
    except InvalidRequest as exc:
        return str(exc)
    version = info.get("record_version")
    if version not in range(1, RECORD_VERSION + 1):
        return f"{uri}: record_version {version!r} is not one this lakekit reads (1..2)"
    if info.get("format") != FORMAT:
        return f"{uri}: format {info.get('format')!r} is not {FORMAT!r}"
    signature = info["signature"]
    problem = (
        sig.problem(signature)
        or sig.labels_problem(signature, info.get("labels"))
        or sig.preprocessing_problem(info.get("preprocessing"), signature)
    )
    if problem:
        return f"{uri}: {problem}"
    if load:
        return _trial_run(uri, weights, signature)
    return None


def _trial_run(uri: str, weights: bytes, signature: dict[str, Any]) -> str | None:
    import torch

    from lakekit.export import flatten_outputs, rebuild

    try:
        module = rebuild(weights, "cpu")
        inputs = [
            torch.zeros(
                [_TRIAL_SIZE if d == -1 else d for d in i["shape"]],
                dtype=getattr(torch, i["dtype"]),
            )
            for i in signature["inputs"]
        ]
        with torch.inference_mode():
            values, _ = flatten_outputs(module(*inputs))
    except Exception as exc:
        return f"{uri}: the model does not run on inputs shaped like its signature: {exc}"
    if len(values) != len(signature["outputs"]):
        return f"{uri}: the model returns {len(values)} outputs, its signature names " + str(
            len(signature["outputs"])
        )
    for spec, value in zip(signature["outputs"], values, strict=True):
        dtype = str(value.dtype).removeprefix("torch.")
        fits = len(value.shape) == len(spec["shape"]) and all(
            d in (-1, actual) for d, actual in zip(spec["shape"], value.shape, strict=True)
        )
        if dtype != spec["dtype"] or not fits:
            return (
                f"{uri}: output {spec['name']!r} is {dtype} {list(value.shape)}, its signature "
                f"says {spec['dtype']} {spec['shape']}"
            )
    return None
