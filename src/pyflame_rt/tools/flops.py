"""Estimate the floating-point operations (FLOPs) of every node of a graph.

Conventions, so numbers compare with what other tools print:

* a multiply-accumulate is 2 FLOPs (Conv, ConvTranspose, MatMul, Gemm, attention products);
* a bias add, an activation or a plain elementwise op costs 1 FLOP per output element (a
  transcendental function such as ``Exp`` counts as one); composite ops cost a small constant
  per element (``Softmax`` 5, ``LayerNormalization`` 7, tanh-form ``Gelu`` 8, ...);
* pooling costs one FLOP per window element read; reductions one per input element;
* pure data movement (``Reshape``, ``Transpose``, ``Concat``, ``Gather``, ``Cast``, ...) is 0.

Shapes come from shape inference after free dims are fixed (``input_shapes``, else 1), so the
estimate is for one concrete shape. Ops without a formula (control flow, custom ops) report
``None``; add a formula with :func:`register_flop_counter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph, Node, Value, clone_graph, infer_shapes
from ..types import TensorInfo

__all__ = ["FlopReport", "NodeFlops", "count_flops", "node_flops", "register_flop_counter"]

FlopCounter = Callable[[Node], "int | None"]
_COUNTERS: dict[tuple[str, str], FlopCounter] = {}


@dataclass
class NodeFlops:
    """The estimate for one node (``flops`` is ``None`` when no formula applies)."""

    name: str
    op_type: str
    domain: str
    flops: int | None
    output_shapes: list[Any] = field(default_factory=list)


@dataclass
class FlopReport:
    """FLOPs of every top-level node, in execution order.

    Attributes:
        nodes: One :class:`NodeFlops` per node.
        input_shapes: The concrete input shapes the estimate is for.
    """

    nodes: list[NodeFlops]
    input_shapes: dict[str, tuple[int, ...]]

    @property
    def total(self) -> int:
        """Sum over the nodes that have an estimate."""
        return sum(n.flops for n in self.nodes if n.flops is not None)

    @property
    def unknown(self) -> list[NodeFlops]:
        """Nodes without an estimate."""
        return [n for n in self.nodes if n.flops is None]

    def by_op_type(self) -> dict[str, int]:
        """Op type -> FLOPs, largest first."""
        totals: dict[str, int] = {}
        for n in self.nodes:
            if n.flops:
                key = f"{n.domain}::{n.op_type}" if n.domain else n.op_type
                totals[key] = totals.get(key, 0) + n.flops
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def register_flop_counter(op_type: str, domain: str = "") -> Callable[[FlopCounter],
                                                                         FlopCounter]:
    """Decorator adding a FLOP formula for ``domain::op_type``.

    The function gets the IR node (its values carry inferred shapes; read them with
    ``node.inputs[i].shape``) and returns an int, or ``None`` when it cannot tell.
    """

    def decorate(fn: FlopCounter) -> FlopCounter:
        _COUNTERS[(domain, op_type)] = fn
        return fn

    return decorate


def count_flops(graph: Graph, input_shapes: Mapping[str, tuple[int, ...]] | None = None
                ) -> FlopReport:
    """Estimate the FLOPs of every node of ``graph`` (which is not changed).

    Args:
        graph: The graph (a copy is shape-inferred).
        input_shapes: Concrete shapes for inputs with free dims; other free dims are set to 1.

    Returns:
        A :class:`FlopReport`.
    """
    work = clone_graph(graph)
    shapes: dict[str, tuple[int, ...]] = {}
    for v in work.inputs:
        if v.const_value is not None:
            continue
        if input_shapes and v.name in input_shapes:
            shapes[v.name] = tuple(input_shapes[v.name])
        elif v.shape is not None:
            shapes[v.name] = tuple(d if isinstance(d, int) else 1 for d in v.shape)
    symbols: dict[str, int] = {}
    for v in work.inputs:
        if v.name in shapes and v.shape is not None and len(v.shape) == len(shapes[v.name]):
            symbols.update({d: n for d, n in zip(v.shape, shapes[v.name]) if isinstance(d, str)})
    try:
        infer_shapes(work, input_shapes=shapes)
    except Exception:  # noqa: BLE001 - an estimate never fails a command; unknown stays None
        pass
    # Ops without a shape function keep the types they were saved with; a symbolic dim there
    # equals the input dim of the same name, so substitute what the inputs fixed.
    for v in work.values():
        if isinstance(v.type, TensorInfo) and v.type.shape is not None and \
                any(isinstance(d, str) and d in symbols for d in v.type.shape):
            v.type = TensorInfo(v.type.dtype, tuple(symbols.get(d, d) if isinstance(d, str)
                                                    else d for d in v.type.shape))
    nodes = [NodeFlops(n.name, n.op_type, n.domain, node_flops(n),
                       [_shape(v) for v in n.outputs]) for n in work.nodes]
    return FlopReport(nodes, shapes)


def node_flops(node: Node) -> int | None:
    """FLOPs of one node whose values carry shapes, or ``None`` without a formula/shape."""
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    fn = _COUNTERS.get((domain, node.op_type))
    if fn is None:
        return None
    try:
        result = fn(node)
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return None if result is None else int(result)


# -- helpers -----------------------------------------------------------------------------------
def _shape(v: Value | None) -> tuple[int, ...] | None:
    if v is None or v.shape is None or not all(isinstance(d, int) for d in v.shape):
        return None
    return tuple(v.shape)


def _numel(v: Value | None) -> int | None:
    s = _shape(v)
    return None if s is None else math.prod(s)


def _input(node: Node, i: int) -> Value | None:
    return node.inputs[i] if i < len(node.inputs) else None


def _out(node: Node) -> Value | None:
    return node.outputs[0] if node.outputs else None


def _activation_cost(node: Node) -> int:
    act = node.attrs.get("activation", "")
    return {"": 0, "Gelu": 8, "GeluTanh": 8, "SiLU": 4, "HardSwish": 4, "HardSigmoid": 3,
            "LeakyRelu": 2, "Sigmoid": 4, "Tanh": 4}.get(act, 1)


def _register(ops: Any, domain: str = "") -> Callable[[FlopCounter], FlopCounter]:
    names = [ops] if isinstance(ops, str) else list(ops)

    def decorate(fn: FlopCounter) -> FlopCounter:
        for name in names:
            _COUNTERS[(domain, name)] = fn
        return fn

    return decorate


# -- matrix products ---------------------------------------------------------------------------
def _conv(node: Node) -> int | None:
    x, w, y = _shape(_input(node, 0)), _shape(_input(node, 1)), _shape(_out(node))
    if x is None or w is None or y is None:
        return None
    group = int(node.attrs.get("group", 1) or 1)
    per_output = (x[1] // group) * math.prod(w[2:])
    out = math.prod(y)
    flops = 2 * out * per_output
    if _input(node, 2) is not None:
        flops += out
    return flops


_register(["Conv", "ConvInteger", "DeformConv"])(_conv)


@_register("QLinearConv")
def _qlinear_conv(node: Node) -> int | None:
    x, w, y = _shape(_input(node, 0)), _shape(_input(node, 3)), _shape(_out(node))
    if x is None or w is None or y is None:
        return None
    group = int(node.attrs.get("group", 1) or 1)
    return 2 * math.prod(y) * (x[1] // group) * math.prod(w[2:])


@_register("FusedConv", domain="pyflame")
def _fused_conv(node: Node) -> int | None:
    base = _conv(node)
    out = _numel(_out(node))
    if base is None or out is None:
        return None
    extra = out * _activation_cost(node)
    if _input(node, 3) is not None:  # residual Z
        extra += out
    return base + extra


@_register("ConvTranspose")
def _conv_transpose(node: Node) -> int | None:
    x, w, y = _shape(_input(node, 0)), _shape(_input(node, 1)), _shape(_out(node))
    if x is None or w is None or y is None:
        return None
    # Every input element is multiplied by the (C_out / group) x kernel weights it feeds.
    flops = 2 * math.prod(x) * w[1] * math.prod(w[2:])
    if _input(node, 2) is not None:
        flops += math.prod(y)
    return flops


def _inner_dim(a: tuple[int, ...], trans: bool = False) -> int:
    if len(a) == 1:
        return a[0]
    return a[-2] if trans else a[-1]


@_register(["MatMul", "MatMulInteger"])
def _matmul(node: Node) -> int | None:
    a, y = _shape(_input(node, 0)), _shape(_out(node))
    if a is None or y is None:
        return None
    return 2 * math.prod(y) * _inner_dim(a)


@_register("QLinearMatMul")
def _qlinear_matmul(node: Node) -> int | None:
    a, y = _shape(_input(node, 0)), _shape(_out(node))
    if a is None or y is None:
        return None
    return 2 * math.prod(y) * _inner_dim(a)


@_register("FusedMatMul", domain="pyflame")
def _fused_matmul(node: Node) -> int | None:
    a, y = _shape(_input(node, 0)), _shape(_out(node))
    if a is None or y is None:
        return None
    out = math.prod(y)
    flops = 2 * out * _inner_dim(a, bool(node.attrs.get("transA", 0)))
    if _input(node, 2) is not None:
        flops += out
    return flops + out * _activation_cost(node)


@_register("Gemm")
def _gemm(node: Node) -> int | None:
    a, y = _shape(_input(node, 0)), _shape(_out(node))
    if a is None or y is None:
        return None
    k = a[0] if node.attrs.get("transA", 0) else a[-1]
    out = math.prod(y)
    flops = 2 * out * k
    if _input(node, 2) is not None:
        flops += out
    return flops


@_register("FusedGemm", domain="pyflame")
def _fused_gemm(node: Node) -> int | None:
    base = _gemm(node)
    out = _numel(_out(node))
    if base is None or out is None:
        return None
    return base + out * _activation_cost(node)


@_register("Attention")
def _attention(node: Node) -> int | None:
    """ONNX Attention-23+: Q·Kᵀ, softmax, ·V (per head; GQA reads shared K/V heads)."""
    q, k, y = _shape(_input(node, 0)), _shape(_input(node, 1)), _shape(_out(node))
    if q is None or k is None or y is None:
        return None
    if len(q) == 4:
        head_dim, kv_len = q[-1], k[-2]
    else:
        heads = int(node.attrs.get("q_num_heads") or 1)
        head_dim, kv_len = q[-1] // heads, k[1]
    past = _shape(_input(node, 4))
    if past is not None:
        kv_len += past[-2]
    rows = math.prod(q) // head_dim  # batch * heads * query length
    scores = rows * kv_len
    return 2 * math.prod(q) * kv_len + 2 * math.prod(y) * kv_len + 5 * scores


@_register("Attention", domain="pyflame")
def _fused_attention(node: Node) -> int | None:
    """pyflame Attention: packed QKV projection, then per-head attention."""
    x, w = _shape(_input(node, 0)), _shape(_input(node, 1))
    heads = int(node.attrs.get("num_heads") or 0)
    if x is None or w is None or heads <= 0 or len(x) != 3:
        return None
    batch, seq, hidden = x
    width = w[1] // 3
    proj = 2 * batch * seq * hidden * w[1]
    if _input(node, 2) is not None:
        proj += batch * seq * w[1]
    scores = batch * heads * seq * seq
    return proj + 4 * batch * seq * seq * width + 5 * scores


# -- elementwise -------------------------------------------------------------------------------
_ELEMENTWISE_COST = {
    # one FLOP per output element
    **dict.fromkeys(
        ["Add", "Sub", "Mul", "Div", "Pow", "Mod", "Relu", "LeakyRelu", "PRelu", "ThresholdedRelu",
         "Abs", "Neg", "Reciprocal", "Sqrt", "Exp", "Log", "Erf", "Sin", "Cos", "Tan", "Asin",
         "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Floor", "Ceil", "Round",
         "Sign", "Clip", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And",
         "Or", "Xor", "Not", "Where", "IsNaN", "IsInf", "BitShift", "BitwiseAnd", "BitwiseOr",
         "BitwiseXor", "BitwiseNot", "Shrink", "Trilu"], 1),
    "Sigmoid": 4, "Tanh": 4, "HardSigmoid": 3, "HardSwish": 4, "Elu": 3, "Selu": 4,
    "Celu": 4, "Softplus": 3, "Softsign": 3, "Mish": 6, "Gelu": 8, "Swish": 4,
    "Softmax": 5, "LogSoftmax": 6, "Hardmax": 2, "QuantizeLinear": 3, "DequantizeLinear": 2,
}


def _elementwise(cost: int) -> FlopCounter:
    def count(node: Node) -> int | None:
        out = _numel(_out(node))
        return None if out is None else cost * out

    return count


for _op, _cost in _ELEMENTWISE_COST.items():
    _COUNTERS[("", _op)] = _elementwise(_cost)
_COUNTERS[("pyflame", "Gelu")] = _elementwise(8)
_COUNTERS[("pyflame", "BiasGelu")] = _elementwise(9)


@_register(["Sum", "Mean", "Max", "Min"])
def _variadic(node: Node) -> int | None:
    out = _numel(_out(node))
    if out is None:
        return None
    n = sum(1 for v in node.inputs if v is not None)
    return out * max(1, n - 1) + (out if node.op_type == "Mean" else 0)


# -- pooling, normalization, reductions --------------------------------------------------------
@_register(["MaxPool", "AveragePool", "LpPool"])
def _pool(node: Node) -> int | None:
    out = _numel(_out(node))
    kernel = node.attrs.get("kernel_shape")
    if out is None or not kernel:
        return None
    return out * math.prod(int(k) for k in kernel)


@_register(["GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"])
def _global_pool(node: Node) -> int | None:
    return _numel(_input(node, 0))


def _per_input_element(cost: int) -> FlopCounter:
    def count(node: Node) -> int | None:
        n = _numel(_input(node, 0))
        return None if n is None else cost * n

    return count


for _op, _cost in {"BatchNormalization": 2, "InstanceNormalization": 7,
                   "LayerNormalization": 7, "GroupNormalization": 7,
                   "MeanVarianceNormalization": 6, "RMSNormalization": 4,
                   "LpNormalization": 3, "ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1,
                   "ReduceMin": 1, "ReduceProd": 1, "ReduceL1": 2, "ReduceL2": 2,
                   "ReduceSumSquare": 2, "ReduceLogSum": 1, "ReduceLogSumExp": 2,
                   "ArgMax": 1, "ArgMin": 1, "CumSum": 1}.items():
    _COUNTERS[("", _op)] = _per_input_element(_cost)
_COUNTERS[("pyflame", "LayerNormalization")] = _per_input_element(7)
_COUNTERS[("pyflame", "SkipLayerNormalization")] = _per_input_element(9)


@_register("LRN")
def _lrn(node: Node) -> int | None:
    n = _numel(_input(node, 0))
    size = int(node.attrs.get("size") or 1)
    return None if n is None else n * (size + 3)


@_register("Resize")
def _resize(node: Node) -> int | None:
    out = _shape(_out(node))
    if out is None:
        return None
    if node.attrs.get("mode", "nearest") == "nearest":
        return 0
    # (bi/tri)linear and cubic blend 2 or 4 neighbours per resized axis.
    taps = 4 if node.attrs.get("mode") == "cubic" else 2
    resized = max(1, len(out) - 2)
    return math.prod(out) * taps ** resized


# -- no arithmetic -----------------------------------------------------------------------------
for _op in ["Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split",
            "Slice", "Gather", "GatherElements", "GatherND", "Scatter", "ScatterElements",
            "ScatterND", "Expand", "Tile", "Pad", "Identity", "Shape", "Size", "Constant",
            "ConstantOfShape", "Cast", "CastLike", "Dropout", "DepthToSpace", "SpaceToDepth",
            "EyeLike", "Range", "NonZero", "OneHot", "ReverseSequence", "Compress",
            "SplitToSequence", "ConcatFromSequence", "SequenceAt", "SequenceConstruct",
            "SequenceInsert", "SequenceLength", "SequenceEmpty", "Optional",
            "OptionalGetElement", "OptionalHasElement"]:
    _COUNTERS[("", _op)] = lambda node: 0
