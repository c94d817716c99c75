"""PyTorch -> PyFlameRT: ``from_torch(module, example_inputs)`` gives a ``Model`` to run.

The direct path, with no ONNX exporter involved: ``torch.export.export`` traces the module
into an ``ExportedProgram``, which is decomposed to the core ATen op set and lowered op by op
into default-domain ONNX ops (opset 21) in our IR, so the CPU kernels, the optimizer and the
ONNX/``.pfm`` writers all work on the result. Parameters and buffers become initializers named
by their state-dict keys; dynamic axes declared with ``torch.export.Dim`` become symbolic dims
named after the ``Dim``.

torch is imported only when these functions are called (``pip install "pyflame_rt[torch]"``).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import InvalidArgumentError, InvalidModelError, PyFlameRTError
from ..ir import Model

__all__ = ["DIM_BOUNDS_KEY", "TorchNotInstalledError", "dim_bounds_from_spec", "export_module",
           "from_torch", "is_torch_module", "parse_dim_bounds"]

#: Model metadata key holding the bounds of ``torch.export.Dim(name, min=, max=)``: JSON
#: ``{"name": [min or null, max or null]}``. Sessions reject feeds whose dim named ``name``
#: is outside them (the converted graph was only checked by torch for sizes within).
DIM_BOUNDS_KEY = "pyflame_rt.dim_bounds"


class TorchNotInstalledError(PyFlameRTError, ImportError):
    """PyTorch is needed for this call but is not installed."""


def is_torch_module(obj: Any) -> bool:
    """True for a ``torch.nn.Module`` (ScriptModules included), without importing torch."""
    nn = getattr(sys.modules.get("torch"), "nn", None)
    return nn is not None and isinstance(obj, nn.Module)


def import_torch() -> Any:
    """``torch``, or a ``TorchNotInstalledError`` saying how to install it."""
    try:
        import torch
        import torch.nn
    except ImportError as exc:
        raise TorchNotInstalledError(
            "converting PyTorch models needs PyTorch; install it with "
            "pip install \"pyflame_rt[torch]\"") from exc
    return torch


def from_torch(module: Any, example_inputs: Any, *, dynamic_shapes: Any = None,
               input_names: Sequence[str] | None = None,
               output_names: Sequence[str] | None = None) -> Model:
    """Convert a ``torch.nn.Module`` into a PyFlameRT ``Model``.

    Args:
        module: The module. It is traced in eval mode (as ``torch.onnx.export`` does); its
            training flags are restored afterwards. A ``torch.jit.ScriptModule`` goes through
            :func:`pyflame_rt.io.torchscript.load_torchscript`.
        example_inputs: A tuple of tensors in ``forward()`` order (a single tensor is accepted).
        dynamic_shapes: ``torch.export``'s format, one entry per input, e.g.
            ``({0: torch.export.Dim("batch")},)``; the ``Dim`` names become the symbolic dim
            names of the graph inputs. ``None`` makes every dim fixed.
        input_names: Graph input names; default: ``forward()``'s argument names.
        output_names: Graph output names; default: ``output`` for one tensor, the keys of a
            returned dict (or ``ModelOutput``), else ``output_0``, ``output_1``, ...

    Returns:
        A ``Model`` that ``InferenceSession`` accepts.

    Raises:
        UnsupportedOperatorError: Listing every ATen op without a lowering and where the
            module uses it.
        InvalidModelError: When ``torch.export`` cannot trace the module.
    """
    torch = import_torch()
    if isinstance(module, torch.jit.ScriptModule):
        from .torchscript import load_torchscript

        return load_torchscript(module, example_inputs, dynamic_shapes=dynamic_shapes,
                                input_names=input_names, output_names=output_names)
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(
            f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    args = normalize_inputs(example_inputs)
    arg_names = forward_arg_names(module, len(args))
    names = list(input_names) if input_names is not None else arg_names
    check_names(names, len(args))
    with eval_mode(module):
        ep = export_module(module, args, dynamic_shapes)
    from ._torch_fx import convert_program

    return convert_program(ep, input_names=names, output_names=output_names,
                           dynamic_shapes=dynamic_shapes, graph_name=type(module).__name__,
                           arg_names=arg_names)


def export_module(module: Any, args: tuple, dynamic_shapes: Any = None, *,
                  what: str = "module") -> Any:
    """``torch.export`` + decomposition to our op set; torch's errors become ours."""
    torch = import_torch()
    from . import _torch_aten  # noqa: F401 - fills the lowering table
    from ._torch_fx import decomposition_table

    try:
        with warnings.catch_warnings():
            # torch's own notes about its internals (nn.RNN weight caching, pytree API).
            warnings.filterwarnings("ignore", message=".*were assigned during export.*")
            warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
            ep = torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as exc:
        raise InvalidModelError(
            f"torch.export could not trace the {what}: {type(exc).__name__}: "
            f"{_first_lines(str(exc))}\nFix: make forward() traceable by torch.export "
            "(no data-dependent Python control flow; mark dynamic axes with "
            "torch.export.Dim and keep them free of size specialization).") from exc
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
            return ep.run_decompositions(decomposition_table())
    except Exception as exc:
        raise InvalidModelError(
            f"decomposing the exported {what} to core ATen failed: {type(exc).__name__}: "
            f"{_first_lines(str(exc))}") from exc


def _first_lines(text: str, n: int = 12) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "")


def normalize_inputs(example_inputs: Any) -> tuple:
    """``example_inputs`` as a tuple of tensors (one tensor alone is wrapped)."""
    torch = import_torch()
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if not isinstance(example_inputs, (tuple, list)):
        raise InvalidArgumentError(
            "example_inputs must be a tuple of tensors in forward() order, got "
            f"{type(example_inputs).__name__}")
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise InvalidArgumentError(
                f"example_inputs[{i}] is a {type(x).__name__}; only tensors can be graph "
                "inputs (bind other arguments with functools.partial or a wrapper module)")
    return tuple(example_inputs)


def forward_arg_names(module: Any, count: int) -> list[str]:
    """The names of ``forward()``'s first ``count`` positional arguments."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    for p in params:
        if len(names) == count:
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            base = p.name
            names.extend(f"{base}_{i}" for i in range(count - len(names)))
    if len(names) < count:
        names.extend(f"input_{i}" for i in range(len(names), count))
    return names


def check_names(names: Sequence[str], count: int) -> None:
    if len(names) != count:
        raise InvalidArgumentError(
            f"input_names has {len(names)} names for {count} example inputs")
    if len(set(names)) != len(names) or any(not isinstance(n, str) or not n for n in names):
        raise InvalidArgumentError(f"input names must be distinct non-empty strings: {names}")


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """Trace in eval mode, then restore each submodule's training flag."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def dim_bounds_from_spec(dynamic_shapes: Any) -> dict[str, list[int | None]]:
    """``{dim name: [min, max]}`` for every ``torch.export.Dim`` in ``dynamic_shapes`` that
    has a bound (``None`` for an open side). ``Dim``'s defaults (min 0, no max) are no bound;
    derived dims (``2 * batch``) follow their root and are not listed."""
    specs = dynamic_shapes.values() if isinstance(dynamic_shapes, dict) else (
        dynamic_shapes or ())
    bounds: dict[str, list[int | None]] = {}
    for spec in specs:
        dims = spec.values() if isinstance(spec, dict) else (
            spec if isinstance(spec, (list, tuple)) else ())
        for dim in dims:
            name = getattr(dim, "__name__", None)
            if not isinstance(name, str) or hasattr(dim, "root"):
                continue
            low, high = getattr(dim, "min", None), getattr(dim, "max", None)
            # torch's "no upper bound" is its own infinity, not an int.
            low = low if isinstance(low, int) and not isinstance(low, bool) and low > 0 \
                else None
            high = high if isinstance(high, int) and not isinstance(high, bool) else None
            if low is not None or high is not None:
                bounds[name] = [low, high]
    return bounds


def parse_dim_bounds(text: str) -> dict[str, tuple[int | None, int | None]]:
    """Read :data:`DIM_BOUNDS_KEY` metadata; raise ``InvalidModelError`` when malformed."""
    import json

    def bad(why: str) -> InvalidModelError:
        return InvalidModelError(
            f"model metadata {DIM_BOUNDS_KEY!r} is malformed ({why}); it must map dim names "
            "to [min or null, max or null]. Remove the entry or convert the model again")

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    bounds: dict[str, tuple[int | None, int | None]] = {}
    for name, pair in data.items():
        if not isinstance(pair, list) or len(pair) != 2 or not all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in pair):
            raise bad(f"entry {name!r} is not [min or null, max or null]")
        bounds[str(name)] = (pair[0], pair[1])
    return bounds
