"""torch.export on the way in and out of a model record (imported only when torch is needed).

A network is exported in eval mode on CPU with a dynamic batch dimension (and any other
dimension the caller says may vary); the signature is read from the exported program itself,
so it says exactly what the archive accepts and returns.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import torch

from lakekit import signature as sig


@cache
def inference_class() -> type[torch.nn.Module]:
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

        def forward(self, *inputs: torch.Tensor) -> Any:
            return self.program(*inputs)

    return Inference


def as_inputs(example: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The example as a tuple of tensors (one tensor is one input)."""
    items = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    if not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise ValueError("example input must be a tensor or a non-empty sequence of tensors")
    return items


def flatten_outputs(result: Any) -> tuple[list[torch.Tensor], list[str] | None]:
    """The network's outputs in order, and their names when it returned a dict."""
    if isinstance(result, torch.Tensor):
        return [result], None
    if isinstance(result, Mapping):
        values, names = list(result.values()), [str(k) for k in result]
    elif isinstance(result, list | tuple):
        values, names = list(result), None
    else:
        raise ValueError(f"the network returned {type(result).__name__}, not tensors")
    if not values or not all(isinstance(v, torch.Tensor) for v in values):
        raise ValueError("the network must return a tensor, a tuple of tensors or a dict of them")
    return values, names


def _dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in sig.DTYPES:
        raise ValueError(f"dtype {name} is not one a model signature can hold")
    return name


def _shape(size: Sequence[Any]) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in size]


def _names(given: Sequence[str] | None, count: int, stem: str, kind: str) -> list[str]:
    if given is None:
        return [stem] if count == 1 else [f"{stem}_{i}" for i in range(count)]
    names = list(given)
    if len(names) != count:
        raise ValueError(f"{len(names)} {kind} names for {count} {kind}s")
    return names


def export(
    module: torch.nn.Module,
    example: torch.Tensor | Sequence[torch.Tensor],
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Sequence[int]] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Export ``module`` and read its signature from the exported program.

    Args:
        module: the network (left as it is: a CPU copy in eval mode is exported).
        example: one input tensor, or one per input, with a batch dimension first.
        input_names: one name per input (default ``input``, or ``input_0``, ...).
        output_names: one name per output (default: a dict's keys, ``output``, ``output_0``).
        dynamic_axes: input name -> the axes besides the batch that may vary in size.

    Returns:
        The PT2 archive and the signature.

    Raises:
        ValueError: bad names or axes, or the network cannot be exported.
    """
    module = copy.deepcopy(module).to("cpu").eval()
    # Copies: a view would drag its whole base storage into the archive as example input.
    inputs = [t.detach().to("cpu").clone() for t in as_inputs(example)]
    # torch.export specialises a dimension whose example size is 0 or 1.
    inputs = [t.expand(2, *t.shape[1:]).contiguous() if t.shape[0] < 2 else t for t in inputs]
    names = _names(input_names, len(inputs), "input", "input")
    axes = dict(dynamic_axes or {})
    unknown = sorted(set(axes) - set(names))
    if unknown:
        raise ValueError(f"dynamic_axes names unknown inputs {unknown}; inputs are {names}")
    batch = torch.export.Dim("batch", min=1)
    dynamic_shapes = []
    for name, tensor in zip(names, inputs, strict=True):
        if tensor.dim() < 1:
            raise ValueError(f"input {name!r} needs a batch dimension first")
        dims: dict[int, Any] = {0: batch}
        for axis in axes.get(name, ()):
            if not 0 < axis < tensor.dim():
                raise ValueError(f"input {name!r}: axis {axis} is not a non-batch axis")
            dims[axis] = torch.export.Dim.DYNAMIC
        dynamic_shapes.append(dims)
    with torch.no_grad():
        values, dict_names = flatten_outputs(module(*inputs))
    outputs = _names(output_names or dict_names, len(values), "output", "output")
    try:
        program = torch.export.export(module, tuple(inputs), dynamic_shapes=tuple(dynamic_shapes))
    except Exception as exc:
        raise ValueError(f"cannot export the model with torch.export: {exc}") from exc
    signature = {"inputs": _read_inputs(program, names), "outputs": _read_outputs(program, outputs)}
    problem = sig.problem(signature)
    if problem:
        raise ValueError(f"the exported network has an unusable signature: {problem}")
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue(), signature


def _read_inputs(program: Any, names: list[str]) -> list[dict[str, Any]]:
    user = list(program.graph_signature.user_inputs)
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for name, node_name in zip(names, user, strict=True):
        val = nodes[node_name].meta["val"]
        specs.append(sig.tensor_spec(name, _dtype_name(val.dtype), _shape(val.shape)))
    return specs


def _read_outputs(program: Any, names: list[str]) -> list[dict[str, Any]]:
    (node,) = [n for n in program.graph.nodes if n.op == "output"]
    vals = [arg.meta["val"] for arg in node.args[0]]
    specs = []
    for name, val in zip(names, vals, strict=True):
        shape = _shape(val.shape)
        if not shape or shape[0] != -1:
            raise ValueError(
                f"output {name!r} has shape {list(val.shape)}: its first dimension must be the "
                "batch (one row per input row)"
            )
        specs.append(sig.tensor_spec(name, _dtype_name(val.dtype), shape))
    return specs


def rebuild(weights: bytes, device: str) -> torch.nn.Module:
    """The inference-only module of a PT2 archive, on ``device``."""
    program = torch.export.load(io.BytesIO(weights))
    if torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return inference_class()(program.module())


def check_round_trip(
    module: torch.nn.Module, weights: bytes, example: torch.Tensor | Sequence[torch.Tensor]
) -> None:
    """Refuse an archive that does not give the trained module's outputs on ``example``."""
    rebuilt = rebuild(weights, "cpu")
    original = copy.deepcopy(module).to("cpu").eval()
    inputs = [t.detach().to("cpu") for t in as_inputs(example)]
    with torch.inference_mode():
        expected, _ = flatten_outputs(original(*inputs))
        got, _ = flatten_outputs(rebuilt(*inputs))
    for want, have in zip(expected, got, strict=True):
        if want.shape != have.shape or not torch.allclose(want, have, rtol=1e-4, atol=1e-5):
            raise ValueError("the exported model does not reproduce the trained model's outputs")


def num_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
