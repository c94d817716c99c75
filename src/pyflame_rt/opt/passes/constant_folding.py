"""Constant folding: nodes whose inputs are all constants become initializers.

The node runs through our own CPU kernel (``pyflame_rt.ops.lookup(...).fn``), so folding
agrees with execution by construction. Never folded: random ops, ops with subgraphs, nodes
whose output is a graph output (it would need an ``Identity`` to keep its name), ops without
a kernel, and results larger than ``max_elements`` that are also larger than their inputs
(``ConstantOfShape``/``Expand``/``Tile``/``Range``/``MatMul`` sizes are estimated *before*
running, so a hostile model cannot make the optimizer allocate gigabytes). A kernel that
raises leaves the node alone: the executor reports the error at run time, with context.
Initializers a caller may override (graph inputs in IR >= 4) are not constants.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ...errors import PyFlameRTError
from ...ir import Graph, Node
from ...ops import KernelContext, lookup
from ...types import DType, TensorInfo
from .._util import RANDOM_OPS, graphs_of, node_opset
from ..levels import OptLevel
from ..pass_manager import Pass, PassContext, PassResult

__all__ = ["DEFAULT_MAX_ELEMENTS", "ConstantFolding"]

#: Outputs with more elements than this (64 MiB of float32) are only folded when they are no
#: larger than the node's constant inputs together. Large enough for the weights models build
#: with ConstantOfShape (a ResNet-50 3x3x512x512 kernel has 2.4M), small enough that a hostile
#: model cannot make one node allocate gigabytes.
DEFAULT_MAX_ELEMENTS = 1 << 24

# Ops whose output size follows from the input shapes by broadcasting.
_BROADCASTING = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "Where", "Max", "Min", "Sum", "Mean", "BitShift",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu",
})
# Ops never folded here: their output size is not bounded by their inputs in a way we check,
# or they are not deterministic functions of their inputs.
_NEVER = RANDOM_OPS | frozenset({"Dropout", "Resize", "Upsample", "OneHot", "EyeLike", "If",
                                 "Loop", "Scan",
                                 "SequenceConstruct", "SequenceEmpty", "SplitToSequence",
                                 "ConcatFromSequence", "SequenceInsert", "SequenceErase",
                                 "SequenceAt", "SequenceLength", "Optional",
                                 "OptionalGetElement", "OptionalHasElement", "StringNormalizer",
                                 "TfIdfVectorizer", "Col2Im"})
_FOLD_DOMAINS = ("", "ai.onnx", "pyflame")


def _prod(shape: Any) -> int:
    return int(math.prod(int(d) for d in shape))


def _estimate(node: Node, inputs: list[np.ndarray | None]) -> int | None:
    """Elements the node's largest output will have; ``None`` when it cannot be bounded."""
    op = node.op_type
    arrays = [a for a in inputs if isinstance(a, np.ndarray)]
    total = sum(a.size for a in arrays)
    try:
        if op == "ConstantOfShape":
            return _prod(inputs[0].reshape(-1)) if inputs[0] is not None else None
        if op == "Expand":
            return _prod(np.broadcast_shapes(inputs[0].shape, tuple(int(d) for d in
                                                                    inputs[1].reshape(-1))))
        if op == "Tile":
            reps = [int(r) for r in inputs[1].reshape(-1)]
            return _prod(d * r for d, r in zip(inputs[0].shape, reps))
        if op == "Range":
            start, limit, delta = (float(np.asarray(a).reshape(())) for a in inputs[:3])
            return max(0, math.ceil((limit - start) / delta)) if delta else None
        if op in ("MatMul", "Gemm", "MatMulInteger", "Einsum"):
            if op == "Einsum":
                return None
            a, b = inputs[0], inputs[1]
            if a.ndim == 0 or b.ndim == 0:
                return None
            m = a.size // max(a.shape[-1], 1) if op != "Gemm" else a.shape[0] * a.shape[1]
            n = b.shape[-1] if b.ndim >= 1 else 1
            return max(m * n * max(1, b.size // max(b.shape[-1] * (b.shape[-2] if b.ndim > 1
                                                                       else 1), 1)), total)
        if op == "Pad":
            pads = inputs[1] if len(inputs) > 1 and inputs[1] is not None else \
                np.asarray(node.attrs.get("pads", []))
            pads = [int(p) for p in pads.reshape(-1)]
            x = inputs[0]
            if len(pads) != 2 * x.ndim:
                return None if len(inputs) > 3 and inputs[3] is not None else total
            return _prod(d + pads[i] + pads[i + x.ndim] for i, d in enumerate(x.shape))
        if op in _BROADCASTING:
            return _prod(np.broadcast_shapes(*[a.shape for a in arrays])) if arrays else 0
    except (ValueError, TypeError, IndexError, OverflowError, AttributeError):
        return None
    return total


class ConstantFolding(Pass):
    """Evaluate nodes with constant inputs once, at optimization time."""

    name = "constant_folding"
    level = OptLevel.BASIC

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        self.max_elements = max_elements

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        for g in graphs_of(graph):
            for node in g.nodes:
                if node.graph is g and self._fold(g, node, ctx):
                    result.add(self.name)
        return result

    def _fold(self, graph: Graph, node: Node, ctx: PassContext) -> bool:
        if node.op_type in _NEVER or node.domain not in _FOLD_DOMAINS:
            return False
        if any(True for _ in node.subgraphs()):
            return False
        outputs = node.outputs
        if not outputs or all(v is None or not v.uses for v in outputs):
            return False  # nothing reads it: dead-code elimination removes it
        if any(v is not None and v.is_graph_output for v in outputs):
            return False
        inputs: list[np.ndarray | None] = []
        for v in node.inputs:
            if v is None:
                inputs.append(None)
                continue
            arr = ctx.const(v)
            if arr is None:
                return False
            inputs.append(arr)
        if node.op_type == "Constant" and not node.inputs:
            from ..pass_manager import constant_node_value

            value = constant_node_value(node)
            if value is None:
                return False
            return self._replace(graph, node, (value,))
        input_elems = sum(a.size for a in inputs if a is not None)
        estimate = _estimate(node, inputs)
        if estimate is None or (estimate > self.max_elements and estimate > input_elems):
            return False
        opset = node_opset(node, graph)
        try:
            kdef = lookup(node.op_type, node.domain, opset)
        except PyFlameRTError:
            return False
        if kdef.check_attrs(node.attrs):
            return False
        kwargs: dict[str, Any] = dict(node.attrs)
        if kdef.takes_ctx:
            kwargs["_ctx"] = KernelContext(
                node=node, noutputs=len(outputs), opset=opset,
                output_present=[v is not None for v in outputs],
                rng=np.random.default_rng(0))
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                out = kdef.fn(*inputs, **kwargs)
        except Exception:  # noqa: BLE001 - leave the node for the executor to report
            return False
        values = out if isinstance(out, tuple) else (out,)
        if len(values) < sum(1 for v in outputs if v is not None):
            return False
        arrays = []
        for i, v in enumerate(outputs):
            if v is None:
                arrays.append(None)
                continue
            if i >= len(values):
                return False
            arr = values[i]
            if isinstance(arr, np.generic):
                arr = np.asarray(arr)
            if not isinstance(arr, np.ndarray):
                return False  # sequences, optionals: not initializers
            if arr.size > self.max_elements and arr.size > input_elems:
                return False
            if v.dtype is not None and DType.from_numpy(arr.dtype) is not v.dtype \
                    and arr.dtype != object:
                return False  # kernel disagrees with the declared type: leave it visible
            if any(a is not None and np.may_share_memory(arr, a) for a in inputs):
                arr = arr.copy()  # a view would keep the (maybe dead) input alive
            arrays.append(arr)
        return self._replace(graph, node, arrays)

    @staticmethod
    def _replace(graph: Graph, node: Node, arrays: Any) -> bool:
        for v, arr in zip(node.outputs, arrays):
            if v is None or arr is None:
                continue
            arr = np.asarray(arr)
            dtype = v.dtype or (DType.STRING if arr.dtype == object
                                else DType.from_numpy(arr.dtype))
            if v.uses:
                # The constant keeps the folded value's name (what users and saved models see);
                # the dying node output gets a fresh one.
                # (A graph output keeps its name through replace_all_uses_with.)
                if v.is_graph_output or v.name in graph.initializers:
                    name = graph.unique_name(v.name)
                else:
                    name, v.name = v.name, graph.unique_name(f"{v.name}_folded")
                init = graph.add_initializer(name, arr, dtype=dtype)
                init.type = TensorInfo(dtype, tuple(arr.shape))
                v.replace_all_uses_with(init)
        graph.remove_node(node)
        return True
