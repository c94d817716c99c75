"""``pyflame-rt convert``: between ``.onnx`` and ``.pfm``, and from PyTorch.

PyTorch sources (the ``torch`` extra) are a TorchScript file (``.pt``/``.pth``/``.torchscript``,
through :func:`pyflame_rt.io.torchscript.load_torchscript`) or ``package.module:factory``, a
function returning a ``torch.nn.Module`` (through :func:`pyflame_rt.io.torch.from_torch`).
Both trace the module, so they need example inputs: ``--shapes NAME:DIMS`` (float32 random
data) or ``--input NAME=FILE.npy`` (any dtype): the ``--input`` ones first, then the
``--shapes`` ones, each in the order given, must follow ``forward()``'s argument order.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, NotImplementedFeatureError
from ..ir import Model
from .common import load_feeds, parse_shapes

__all__ = ["is_torch_source", "load_torch_source"]

TORCHSCRIPT_EXTENSIONS = (".pt", ".pth", ".torchscript")


def is_torch_source(source: str) -> bool:
    """Whether ``source`` names a TorchScript file or a ``module:factory``."""
    if source.lower().endswith(TORCHSCRIPT_EXTENSIONS):
        return True
    # "package.module:factory", but not an existing file nor a Windows path like C:\m.onnx.
    head, sep, tail = source.partition(":")
    return bool(sep) and not os.path.exists(source) and tail.isidentifier() and all(
        part.isidentifier() for part in head.split("."))


def _example_inputs(shape_items: Sequence[str], input_items: Sequence[str]
                    ) -> tuple[list[str], list[np.ndarray]]:
    arrays = load_feeds(input_items)
    shapes = parse_shapes(shape_items)
    clash = sorted(set(arrays) & set(shapes))
    if clash:
        raise InvalidArgumentError(f"{clash} given both with --shapes and --input")
    rng = np.random.default_rng(0)
    # forward() order: the --input arrays as given, then the --shapes ones as given.
    names = list(arrays)
    values = list(arrays.values())
    for name, shape in shapes.items():
        names.append(name)
        values.append(rng.standard_normal(shape).astype(np.float32))
    if not values:
        raise InvalidArgumentError(
            "converting a PyTorch model traces it, which needs example inputs: give each "
            "forward() argument with --shapes NAME:DIMS (float32) or --input NAME=FILE.npy, in "
            "forward() order")
    return names, values


def load_torch_source(source: str, *, shape_items: Sequence[str] = (),
                      input_items: Sequence[str] = (), dynamic_batch: bool = False) -> Model:
    """Convert a TorchScript file or a ``module:factory`` into a ``Model``.

    Args:
        source: ``model.pt`` or ``package.module:factory``.
        shape_items: ``NAME:DIMS`` example inputs (float32 random), in ``forward()`` order.
        input_items: ``NAME=FILE.npy`` example inputs.
        dynamic_batch: Make dim 0 of every input the symbolic dim ``batch``.
    """
    if importlib.util.find_spec("pyflame_rt.io.torch") is None:
        raise NotImplementedFeatureError(
            f"cannot convert {source!r}: the PyTorch/TorchScript importer is not available yet "
            "in this build (pyflame_rt.io.torch is missing); export the model to ONNX with "
            "torch.onnx.export and convert that")
    from ..errors import ModelNotFoundError
    from ..io.torch import import_torch

    is_script = source.lower().endswith(TORCHSCRIPT_EXTENSIONS)
    if is_script and not os.path.isfile(source):
        raise ModelNotFoundError(f"TorchScript file {source!r} does not exist")
    torch = import_torch()
    names, values = _example_inputs(shape_items, input_items)
    with warnings.catch_warnings():
        # torch.export's own deprecation chatter is not the user's business on the CLI.
        warnings.simplefilter("ignore", FutureWarning)
        return _convert(torch, source, is_script, names, values, dynamic_batch)


def _convert(torch: Any, source: str, is_script: bool, names: list[str],
             values: list[np.ndarray], dynamic_batch: bool) -> Model:
    example = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in values)
    dynamic: Any = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} if v.ndim else None for v in values)
    if is_script:
        from ..io.torchscript import load_torchscript

        return load_torchscript(source, example, dynamic_shapes=dynamic, input_names=names)
    from ..io.torch import from_torch

    return from_torch(_factory(source)(), example, dynamic_shapes=dynamic, input_names=names)


def _factory(source: str) -> Any:
    module_name, _, attr = source.partition(":")
    # Like other "module:object" tools, look in the current folder first.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InvalidArgumentError(f"cannot import {module_name!r} for {source!r}: {exc}; run "
                                   "from the folder holding it or add it to PYTHONPATH"
                                   ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InvalidArgumentError(f"{module_name!r} has no callable {attr!r}: {source!r} must "
                                   "name a function (or class) returning a torch.nn.Module")
    return factory
