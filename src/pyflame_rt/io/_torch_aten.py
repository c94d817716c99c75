"""Core ATen ops -> default-domain ONNX ops (opset 21): one small lowering per ATen overload.

Each function is registered with ``@aten("overload", ...)`` and called as
``fn(cx, node, *args)`` with the overload's arguments in schema order (defaults filled in);
``cx`` is the :class:`~pyflame_rt.io._torch_fx.Converter`. Tensor arguments arrive as FX nodes
(``cx.v(x)`` is the ``Value``), sizes may be SymInt nodes (``cx.ints``/``cx.sym`` make int64
tensors of them). Dtypes follow torch: the traced output dtype of the node decides the compute
type, inputs are cast to it (``torch.result_type`` semantics for comparisons).

A lowering that meets an argument it cannot express raises ``Unsupported(reason)``; the
converter collects those and reports every one with its source location.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch

from ._torch_fx import Converter, Unsupported, aten, torch_to_dtype

__all__: list[str] = []

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _out(cx: Converter) -> torch.dtype:
    """The traced dtype of the node being lowered (its first output for tuples)."""
    val = cx.node.meta.get("val")
    if isinstance(val, (list, tuple)):
        val = val[0]
    if isinstance(val, torch.Tensor):
        return val.dtype
    return cx.dtype(cx.node)


def _dummy(cx: Converter, arg: Any) -> Any:
    """Something ``torch.result_type`` can weigh like ``arg`` (a tensor of its rank class)."""
    if cx.is_tensor(arg):
        return torch.empty(() if cx.rank(arg) == 0 else (1,), dtype=cx.dtype(arg))
    if isinstance(arg, torch.fx.Node):  # SymInt / SymFloat / SymBool
        return {torch.int64: 1, torch.bool: True}.get(cx.dtype(arg), 1.0)
    return arg


def _promote(cx: Converter, a: Any, b: Any) -> torch.dtype:
    return torch.result_type(_dummy(cx, a), _dummy(cx, b))


def _unsqueeze(cx: Converter, x, axes: list[int]):
    return cx.op("Unsqueeze", x, cx.const(np.asarray(axes, np.int64)), _dtype=cx.dtype(x))


def _squeeze(cx: Converter, x, axes: list[int]):
    return cx.op("Squeeze", x, cx.const(np.asarray(axes, np.int64)), _dtype=cx.dtype(x))


def _reshape(cx: Converter, x, shape):
    shape_v = shape if not isinstance(shape, (list, tuple)) else cx.ints(shape)
    return cx.op("Reshape", x, shape_v, _dtype=cx.dtype(x))


def _transpose(cx: Converter, x, perm: list[int]):
    if perm == sorted(perm):
        return x
    return cx.op("Transpose", x, perm=list(perm), _dtype=cx.dtype(x))


def _pair(value: Any, n: int) -> list[int]:
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise Unsupported(f"expected {n} values, got {vals}")
    return [int(v) for v in vals]


# -- bookkeeping ops -----------------------------------------------------------------------------
@aten(operator.getitem)
def getitem(cx, node, src, index):
    value = cx.v(src)
    if not isinstance(value, (list, tuple)):
        raise Unsupported("getitem on a single tensor")
    result = value[index]
    if result is None:
        raise Unsupported(f"output {index} of {src.target} is not produced by the lowering")
    return result


@aten("_assert_tensor_metadata.default", "_assert_scalar.default", "sym_constrain_range.default",
      "sym_constrain_range_for_size.default", "_assert_async.msg", "_assert_async.default")
def drop(cx, node, *args):
    """Runtime checks torch inserted; the graph runs without them."""


@aten("alias.default", "clone.default", "detach.default", "lift_fresh_copy.default",
      "_to_copy.default", "contiguous.default", "to.dtype")
def to_copy(cx, node, x, *rest):
    return cx.cast(cx.v(x), _out(cx))


@aten("copy.default")
def copy(cx, node, dst, src, non_blocking=False):
    value = cx.cast(cx.v(src), cx.dtype(dst))
    if cx.shape(src) == cx.shape(dst):
        return value
    return cx.op("Expand", value, cx.shape_of(cx.v(dst)), _dtype=cx.dtype(dst))


# -- SymInt arithmetic (sizes as 1-element int64 tensors) ---------------------------------------
@aten("sym_size.int")
def sym_size(cx, node, x, dim):
    rank = cx.rank(x)
    dim %= rank
    static = cx.static(cx.shape(x)[dim])
    if static is not None:
        return cx.const([static], np.int64)
    return cx.shape_of(cx.v(x), dim, dim + 1)


@aten("sym_numel.default")
def sym_numel(cx, node, x):
    return cx.op("ReduceProd", cx.shape_of(cx.v(x)), keepdims=1, _dtype=torch.int64)


@aten("_local_scalar_dense.default", "item.default")
def item(cx, node, x):
    if cx.dtype(x) not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise Unsupported("Tensor.item() of a non-integer tensor")
    return cx.sym(x)


def _sym_binary(onnx_op: str):
    def lower(cx, node, a, b):
        if cx.dtype(node) not in (torch.int64,):
            raise Unsupported(f"{onnx_op} on symbolic {cx.dtype(node)} values")
        return cx.op(onnx_op, cx.sym(a), cx.sym(b), _dtype=torch.int64)

    return lower


aten(operator.add)(_sym_binary("Add"))
aten(operator.sub)(_sym_binary("Sub"))
aten(operator.mul)(_sym_binary("Mul"))
aten(torch.sym_max)(_sym_binary("Max"))
aten(torch.sym_min)(_sym_binary("Min"))


def _sym_compare(onnx_op: str, negate: bool = False):
    def lower(cx, node, a, b):
        result = cx.op(onnx_op, cx.sym(a), cx.sym(b), _dtype=torch.bool)
        return cx.op("Not", result, _dtype=torch.bool) if negate else result

    return lower


for _fn, _onnx, _neg in [(operator.eq, "Equal", False), (operator.ne, "Equal", True),
                         (operator.lt, "Less", False), (operator.le, "LessOrEqual", False),
                         (operator.gt, "Greater", False), (operator.ge, "GreaterOrEqual", False)]:
    aten(_fn)(_sym_compare(_onnx, _neg))


@aten(operator.floordiv)
def sym_floordiv(cx, node, a, b):
    return _floor_div_int(cx, cx.sym(a), cx.sym(b), torch.int64)


@aten(operator.mod)
def sym_mod(cx, node, a, b):
    return cx.op("Mod", cx.sym(a), cx.sym(b), _dtype=torch.int64)


@aten(operator.neg)
def sym_neg(cx, node, a):
    return cx.op("Neg", cx.sym(a), _dtype=torch.int64)


# -- creation ------------------------------------------------------------------------------------
def _fill(cx, size, fill_value, dtype: torch.dtype):
    static = [cx.static(cx.meta(s)) for s in size]
    np_dtype = torch_to_dtype(dtype).numpy
    if isinstance(fill_value, torch.fx.Node):
        shape = cx.ints(size)
        return cx.op("Expand", cx.scalar(fill_value, dtype), shape, _dtype=dtype)
    if all(s is not None for s in static) and math.prod(static) <= 4096:
        return cx.const(np.full(static, fill_value, dtype=np_dtype))
    return cx.op("ConstantOfShape", cx.ints(size),
                 value=np.full([1], fill_value, dtype=np_dtype), _dtype=dtype)


@aten("full.default")
def full(cx, node, size, fill_value, *rest):
    return _fill(cx, size, fill_value, _out(cx))


@aten("zeros.default", "empty.memory_format", "new_zeros.default", "new_empty.default")
def zeros(cx, node, *args):
    size = args[1] if node.target in (torch.ops.aten.new_zeros.default,
                                      torch.ops.aten.new_empty.default) else args[0]
    return _fill(cx, size, 0, _out(cx))


@aten("ones.default", "new_ones.default")
def ones(cx, node, *args):
    size = args[1] if node.target is torch.ops.aten.new_ones.default else args[0]
    return _fill(cx, size, 1, _out(cx))


@aten("full_like.default", "zeros_like.default", "ones_like.default", "empty_like.default")
def full_like(cx, node, x, *rest):
    target = node.target
    fill = rest[0] if target is torch.ops.aten.full_like.default else (
        1 if target is torch.ops.aten.ones_like.default else 0)
    dtype = _out(cx)
    return cx.op("Expand", cx.scalar(fill, dtype), cx.shape_of(cx.v(x)), _dtype=dtype)


@aten("scalar_tensor.default")
def scalar_tensor(cx, node, s, *rest):
    return cx.scalar(s, _out(cx))


@aten("arange.start_step", "arange.start", "arange.default")
def arange(cx, node, *args):
    dtype = _out(cx)
    target = node.target
    if target is torch.ops.aten.arange.default:
        start, end, step = 0, args[0], 1
    elif target is torch.ops.aten.arange.start:
        start, end, step = args[0], args[1], 1
    else:
        start, end, step = args[0], args[1], args[2]
    return cx.op("Range", cx.scalar(start, dtype), cx.scalar(end, dtype), cx.scalar(step, dtype),
                 _dtype=dtype)


# -- elementwise ---------------------------------------------------------------------------------
def _unary(onnx_op: str, float_only: bool = True, **attrs: Any):
    def lower(cx, node, x, *rest):
        dtype = _out(cx)
        if float_only and dtype not in FLOATS:
            raise Unsupported(f"{onnx_op} of a {dtype} tensor")
        return cx.op(onnx_op, cx.cast(cx.v(x), dtype), _dtype=dtype, **attrs)

    return lower


for _name, _onnx in [("exp", "Exp"), ("log", "Log"), ("sqrt", "Sqrt"), ("sigmoid", "Sigmoid"),
                     ("tanh", "Tanh"), ("sin", "Sin"), ("cos", "Cos"), ("tan", "Tan"),
                     ("asin", "Asin"), ("acos", "Acos"), ("atan", "Atan"), ("sinh", "Sinh"),
                     ("cosh", "Cosh"), ("asinh", "Asinh"), ("acosh", "Acosh"),
                     ("atanh", "Atanh"), ("erf", "Erf"), ("floor", "Floor"), ("ceil", "Ceil"),
                     ("reciprocal", "Reciprocal"), ("mish", "Mish"), ("hardswish", "HardSwish")]:
    aten(f"{_name}.default")(_unary(_onnx))
aten("abs.default")(_unary("Abs", float_only=False))
aten("neg.default")(_unary("Neg", float_only=False))
aten("sign.default")(_unary("Sign", float_only=False))
aten("relu.default")(_unary("Relu", float_only=False))
aten("hardsigmoid.default")(_unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5))


@aten("round.default")
def round_(cx, node, x):
    if _out(cx) not in FLOATS:
        return cx.v(x)
    return cx.op("Round", cx.v(x), _dtype=_out(cx))


@aten("trunc.default")
def trunc(cx, node, x):
    dtype = _out(cx)
    value = cx.v(x)
    if dtype not in FLOATS:
        return value
    neg = cx.op("Less", value, cx.scalar(0, dtype), _dtype=torch.bool)
    return cx.op("Where", neg, cx.op("Ceil", value, _dtype=dtype),
                 cx.op("Floor", value, _dtype=dtype), _dtype=dtype)


@aten("rsqrt.default")
def rsqrt(cx, node, x):
    dtype = _out(cx)
    return cx.op("Reciprocal", cx.op("Sqrt", cx.cast(cx.v(x), dtype), _dtype=dtype),
                 _dtype=dtype)


@aten("log1p.default")
def log1p(cx, node, x):
    dtype = _out(cx)
    return cx.op("Log", cx.op("Add", cx.cast(cx.v(x), dtype), cx.scalar(1, dtype),
                              _dtype=dtype), _dtype=dtype)


@aten("expm1.default")
def expm1(cx, node, x):
    dtype = _out(cx)
    return cx.op("Sub", cx.op("Exp", cx.cast(cx.v(x), dtype), _dtype=dtype),
                 cx.scalar(1, dtype), _dtype=dtype)


@aten("log2.default", "log10.default")
def log_base(cx, node, x):
    dtype = _out(cx)
    base = 2.0 if node.target is torch.ops.aten.log2.default else 10.0
    ln = cx.op("Log", cx.cast(cx.v(x), dtype), _dtype=dtype)
    return cx.op("Div", ln, cx.scalar(math.log(base), dtype), _dtype=dtype)


@aten("exp2.default")
def exp2(cx, node, x):
    dtype = _out(cx)
    return cx.op("Pow", cx.scalar(2.0, dtype), cx.cast(cx.v(x), dtype), _dtype=dtype)


@aten("isnan.default")
def isnan(cx, node, x):
    if cx.dtype(x) not in FLOATS:
        return _fill_like_bool(cx, x, False)
    return cx.op("IsNaN", cx.v(x), _dtype=torch.bool)


@aten("isinf.default")
def isinf(cx, node, x):
    if cx.dtype(x) not in FLOATS:
        return _fill_like_bool(cx, x, False)
    return cx.op("IsInf", cx.v(x), _dtype=torch.bool)


def _fill_like_bool(cx, x, value: bool):
    return cx.op("Expand", cx.const(np.asarray(value)), cx.shape_of(cx.v(x)), _dtype=torch.bool)


@aten("logical_not.default")
def logical_not(cx, node, x):
    return cx.op("Not", cx.cast(cx.v(x), torch.bool), _dtype=torch.bool)


@aten("bitwise_not.default")
def bitwise_not(cx, node, x):
    if cx.dtype(x) == torch.bool:
        return cx.op("Not", cx.v(x), _dtype=torch.bool)
    return cx.op("BitwiseNot", cx.v(x), _dtype=cx.dtype(x))


@aten("gelu.default")
def gelu(cx, node, x, approximate="none"):
    return cx.op("Gelu", cx.v(x), approximate=approximate, _dtype=_out(cx))


@aten("silu.default")
def silu(cx, node, x):
    value = cx.v(x)
    return cx.op("Mul", value, cx.op("Sigmoid", value, _dtype=_out(cx)), _dtype=_out(cx))


@aten("hardtanh.default")
def hardtanh(cx, node, x, min_val=-1.0, max_val=1.0):
    dtype = _out(cx)
    return cx.op("Clip", cx.v(x), cx.scalar(min_val, dtype), cx.scalar(max_val, dtype),
                 _dtype=dtype)


@aten("leaky_relu.default")
def leaky_relu(cx, node, x, negative_slope=0.01):
    return cx.op("LeakyRelu", cx.v(x), alpha=float(negative_slope), _dtype=_out(cx))


@aten("elu.default")
def elu(cx, node, x, alpha=1.0, scale=1.0, input_scale=1.0):
    dtype = _out(cx)
    value = cx.v(x)
    alpha, scale, input_scale = float(alpha), float(scale), float(input_scale)
    if scale == 1.0 and input_scale == 1.0:
        return cx.op("Elu", value, alpha=alpha, _dtype=dtype)
    if input_scale == 1.0:
        return cx.op("Selu", value, alpha=alpha, gamma=scale, _dtype=dtype)
    if scale == 1.0 and abs(alpha * input_scale - 1.0) < 1e-12:
        return cx.op("Celu", value, alpha=alpha, _dtype=dtype)
    scaled = cx.op("Mul", value, cx.scalar(input_scale, dtype), _dtype=dtype)
    # elu(x) = scale * (x > 0 ? x : alpha * (exp(x * input_scale) - 1)); positive part unscaled
    # by input_scale, so build it from the two branches.
    neg = cx.op("Mul", cx.op("Sub", cx.op("Exp", scaled, _dtype=dtype), cx.scalar(1.0, dtype),
                             _dtype=dtype), cx.scalar(alpha, dtype), _dtype=dtype)
    pos = cx.op("Greater", value, cx.scalar(0.0, dtype), _dtype=torch.bool)
    return cx.op("Mul", cx.op("Where", pos, value, neg, _dtype=dtype), cx.scalar(scale, dtype),
                 _dtype=dtype)


@aten("softplus.default")
def softplus(cx, node, x, beta=1.0, threshold=20.0):
    dtype = _out(cx)
    value = cx.v(x)
    bx = value if beta == 1 else cx.op("Mul", value, cx.scalar(beta, dtype), _dtype=dtype)
    soft = cx.op("Softplus", bx, _dtype=dtype)
    if beta != 1:
        soft = cx.op("Div", soft, cx.scalar(beta, dtype), _dtype=dtype)
    linear = cx.op("Greater", bx, cx.scalar(threshold, dtype), _dtype=torch.bool)
    return cx.op("Where", linear, value, soft, _dtype=dtype)


@aten("_prelu_kernel.default", "prelu.default")
def prelu(cx, node, x, weight):
    slope = cx.v(weight)
    rank = cx.rank(x)
    if cx.shape(weight) not in ((1,), ()) and rank > 2:
        slope = _unsqueeze(cx, slope, list(range(1, rank - 1)))
    return cx.op("PRelu", cx.v(x), slope, _dtype=_out(cx))


@aten("clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default",
      "clamp_min.Tensor", "clamp_max.Tensor")
def clamp(cx, node, x, lo=None, hi=None):
    dtype = _out(cx)
    target = node.target
    if target in (torch.ops.aten.clamp_max.default, torch.ops.aten.clamp_max.Tensor):
        lo, hi = None, lo
    value = cx.cast(cx.v(x), dtype)
    if not cx.is_tensor(lo) and not cx.is_tensor(hi):
        if dtype not in FLOATS:
            lo = None if lo is None else math.ceil(lo) if isinstance(lo, float) else lo
            hi = None if hi is None else math.floor(hi) if isinstance(hi, float) else hi
        return cx.op("Clip", value, None if lo is None else cx.scalar(lo, dtype),
                     None if hi is None else cx.scalar(hi, dtype), _dtype=dtype)
    if lo is not None:
        value = cx.op("Max", value, cx.tensor(lo, dtype), _dtype=dtype)
    if hi is not None:
        value = cx.op("Min", value, cx.tensor(hi, dtype), _dtype=dtype)
    return value


def _binary(cx, onnx_op: str, a, b, dtype: torch.dtype, out: torch.dtype | None = None):
    return cx.op(onnx_op, cx.tensor(a, dtype), cx.tensor(b, dtype), _dtype=out or dtype)


def _scaled(cx, b, alpha, dtype):
    if alpha == 1:
        return cx.tensor(b, dtype)
    return cx.op("Mul", cx.tensor(b, dtype), cx.scalar(alpha, dtype), _dtype=dtype)


@aten("add.Tensor", "add.Scalar")
def add(cx, node, a, b, alpha=1):
    dtype = _out(cx)
    if dtype == torch.bool:
        return cx.op("Or", cx.tensor(a, dtype), cx.tensor(b, dtype), _dtype=dtype)
    return cx.op("Add", cx.tensor(a, dtype), _scaled(cx, b, alpha, dtype), _dtype=dtype)


@aten("sub.Tensor", "sub.Scalar")
def sub(cx, node, a, b, alpha=1):
    dtype = _out(cx)
    return cx.op("Sub", cx.tensor(a, dtype), _scaled(cx, b, alpha, dtype), _dtype=dtype)


@aten("rsub.Scalar", "rsub.Tensor")
def rsub(cx, node, a, b, alpha=1):
    dtype = _out(cx)
    return cx.op("Sub", cx.tensor(b, dtype), _scaled(cx, a, alpha, dtype), _dtype=dtype)


@aten("mul.Tensor", "mul.Scalar")
def mul(cx, node, a, b):
    dtype = _out(cx)
    if dtype == torch.bool:
        return _binary(cx, "And", a, b, dtype)
    return _binary(cx, "Mul", a, b, dtype)


@aten("div.Tensor", "div.Scalar")
def div(cx, node, a, b):
    return _binary(cx, "Div", a, b, _out(cx))


def _floor_div_int(cx, a, b, dtype):
    # (a - floor_mod(a, b)) is a multiple of b, so the truncating Div is exact.
    rem = cx.op("Mod", a, b, fmod=0, _dtype=dtype)
    return cx.op("Div", cx.op("Sub", a, rem, _dtype=dtype), b, _dtype=dtype)


@aten("div.Tensor_mode", "div.Scalar_mode", "floor_divide.default", "floor_divide.Scalar")
def div_mode(cx, node, a, b, rounding_mode="floor"):
    dtype = _out(cx)
    va, vb = cx.tensor(a, dtype), cx.tensor(b, dtype)
    if rounding_mode is None:
        return cx.op("Div", va, vb, _dtype=dtype)
    if dtype not in FLOATS:
        if rounding_mode == "trunc":
            return cx.op("Div", va, vb, _dtype=dtype)
        return _floor_div_int(cx, va, vb, dtype)
    q = cx.op("Div", va, vb, _dtype=dtype)
    if rounding_mode == "floor":
        return cx.op("Floor", q, _dtype=dtype)
    neg = cx.op("Less", q, cx.scalar(0, dtype), _dtype=torch.bool)
    return cx.op("Where", neg, cx.op("Ceil", q, _dtype=dtype), cx.op("Floor", q, _dtype=dtype),
                 _dtype=dtype)


@aten("remainder.Tensor", "remainder.Scalar", "remainder.Scalar_Tensor")
def remainder(cx, node, a, b):
    dtype = _out(cx)
    va, vb = cx.tensor(a, dtype), cx.tensor(b, dtype)
    if dtype not in FLOATS:
        return cx.op("Mod", va, vb, fmod=0, _dtype=dtype)
    # ONNX Mod needs fmod=1 for floats; torch's remainder takes the divisor's sign.
    floor = cx.op("Floor", cx.op("Div", va, vb, _dtype=dtype), _dtype=dtype)
    return cx.op("Sub", va, cx.op("Mul", floor, vb, _dtype=dtype), _dtype=dtype)


@aten("fmod.Tensor", "fmod.Scalar")
def fmod(cx, node, a, b):
    dtype = _out(cx)
    return cx.op("Mod", cx.tensor(a, dtype), cx.tensor(b, dtype), fmod=1, _dtype=dtype)


@aten("pow.Tensor_Tensor", "pow.Tensor_Scalar", "pow.Scalar")
def pow_(cx, node, a, b):
    dtype = _out(cx)
    if not cx.is_tensor(b) and b == 2 and cx.is_tensor(a):
        va = cx.tensor(a, dtype)
        return cx.op("Mul", va, va, _dtype=dtype)
    if not cx.is_tensor(b) and b == 0.5 and cx.is_tensor(a):
        return cx.op("Sqrt", cx.tensor(a, dtype), _dtype=dtype)
    return _binary(cx, "Pow", a, b, dtype)


@aten("maximum.default", "max.other")
def maximum(cx, node, a, b):
    return _binary(cx, "Max", a, b, _out(cx))


@aten("minimum.default", "min.other")
def minimum(cx, node, a, b):
    return _binary(cx, "Min", a, b, _out(cx))


@aten("atan2.default")
def atan2(cx, node, y, x):
    dtype = _out(cx)
    vy, vx = cx.tensor(y, dtype), cx.tensor(x, dtype)
    zero = cx.scalar(0.0, dtype)
    base = cx.op("Atan", cx.op("Div", vy, vx, _dtype=dtype), _dtype=dtype)
    y_nonneg = cx.op("GreaterOrEqual", vy, zero, _dtype=torch.bool)
    pi = cx.op("Where", y_nonneg, cx.scalar(math.pi, dtype), cx.scalar(-math.pi, dtype),
               _dtype=dtype)
    left = cx.op("Add", base, pi, _dtype=dtype)
    half = cx.op("Mul", cx.op("Sign", vy, _dtype=dtype), cx.scalar(math.pi / 2, dtype),
                 _dtype=dtype)
    x_pos = cx.op("Greater", vx, zero, _dtype=torch.bool)
    x_neg = cx.op("Less", vx, zero, _dtype=torch.bool)
    return cx.op("Where", x_pos, base, cx.op("Where", x_neg, left, half, _dtype=dtype),
                 _dtype=dtype)


@aten("hypot.default")
def hypot(cx, node, a, b):
    dtype = _out(cx)
    va, vb = cx.tensor(a, dtype), cx.tensor(b, dtype)
    sq = cx.op("Add", cx.op("Mul", va, va, _dtype=dtype), cx.op("Mul", vb, vb, _dtype=dtype),
               _dtype=dtype)
    return cx.op("Sqrt", sq, _dtype=dtype)


def _bitwise(bool_op: str, int_op: str):
    def lower(cx, node, a, b):
        dtype = _out(cx)
        return _binary(cx, bool_op if dtype == torch.bool else int_op, a, b, dtype)

    return lower


for _kind, _b, _i in [("and", "And", "BitwiseAnd"), ("or", "Or", "BitwiseOr"),
                      ("xor", "Xor", "BitwiseXor")]:
    aten(f"bitwise_{_kind}.Tensor", f"bitwise_{_kind}.Scalar")(_bitwise(_b, _i))


def _logical(onnx_op: str):
    def lower(cx, node, a, b):
        return _binary(cx, onnx_op, a, b, torch.bool, _out(cx))

    return lower


aten("logical_and.default")(_logical("And"))
aten("logical_or.default")(_logical("Or"))
aten("logical_xor.default")(_logical("Xor"))


def _compare(onnx_op: str, negate: bool = False):
    def lower(cx, node, a, b):
        dtype = _promote(cx, a, b)
        result = cx.op(onnx_op, cx.tensor(a, dtype), cx.tensor(b, dtype), _dtype=torch.bool)
        if negate:
            result = cx.op("Not", result, _dtype=torch.bool)
        return result

    return lower


for _name, _onnx, _neg in [("eq", "Equal", False), ("ne", "Equal", True), ("lt", "Less", False),
                           ("le", "LessOrEqual", False), ("gt", "Greater", False),
                           ("ge", "GreaterOrEqual", False)]:
    aten(f"{_name}.Tensor", f"{_name}.Scalar")(_compare(_onnx, _neg))


@aten("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def where(cx, node, cond, a, b):
    dtype = _out(cx)
    return cx.op("Where", cx.cast(cx.v(cond), torch.bool), cx.tensor(a, dtype),
                 cx.tensor(b, dtype), _dtype=dtype)


@aten("masked_fill.Scalar", "masked_fill.Tensor")
def masked_fill(cx, node, x, mask, value):
    dtype = _out(cx)
    return cx.op("Where", cx.cast(cx.v(mask), torch.bool), cx.tensor(value, dtype),
                 cx.v(x), _dtype=dtype)


@aten("fill.Scalar", "fill.Tensor")
def fill(cx, node, x, value):
    dtype = _out(cx)
    return cx.op("Expand", cx.tensor(value, dtype), cx.shape_of(cx.v(x)), _dtype=dtype)


# -- shapes --------------------------------------------------------------------------------------
@aten("view.default", "_unsafe_view.default", "reshape.default")
def view(cx, node, x, size):
    static = [cx.static(cx.meta(s)) for s in size]
    allowzero = 1 if 0 in static else 0
    return cx.op("Reshape", cx.v(x), cx.ints(size), allowzero=allowzero or None,
                 _dtype=cx.dtype(x))


@aten("permute.default")
def permute(cx, node, x, dims):
    rank = cx.rank(x)
    return _transpose(cx, cx.v(x), cx.axes(dims, rank))


@aten("transpose.int")
def transpose(cx, node, x, dim0, dim1):
    rank = cx.rank(x)
    perm = list(range(rank))
    if rank:
        a, b = dim0 % rank, dim1 % rank
        perm[a], perm[b] = perm[b], perm[a]
    return _transpose(cx, cx.v(x), perm)


@aten("t.default", "numpy_T.default")
def t(cx, node, x):
    return _transpose(cx, cx.v(x), list(reversed(range(cx.rank(x)))))


@aten("expand.default")
def expand(cx, node, x, size, implicit=False):
    items = [1 if cx.static(cx.meta(s)) == -1 else s for s in size]
    return cx.op("Expand", cx.v(x), cx.ints(items), _dtype=cx.dtype(x))


@aten("unsqueeze.default")
def unsqueeze(cx, node, x, dim):
    return _unsqueeze(cx, cx.v(x), [dim % (cx.rank(x) + 1)])


@aten("squeeze.dims", "squeeze.dim", "squeeze.default")
def squeeze(cx, node, x, dims=None):
    rank = cx.rank(x)
    shape = cx.shape(x)
    if dims is None:
        dims = list(range(rank))
    elif isinstance(dims, int):
        dims = [dims]
    axes = [d % rank for d in dims if rank and cx.static(shape[d % rank]) == 1]
    if not axes:
        return cx.v(x)
    return _squeeze(cx, cx.v(x), axes)


@aten("slice.Tensor")
def slice_(cx, node, x, dim=0, start=None, end=None, step=1):
    rank = cx.rank(x)
    dim %= rank
    start = 0 if start is None else start
    end = INT64_MAX if end is None else end
    if cx.static(cx.meta(start)) == 0 and cx.static(cx.meta(end)) is not None \
            and cx.static(cx.meta(end)) >= INT64_MAX and step == 1:
        return cx.v(x)
    return cx.op("Slice", cx.v(x), cx.ints([start]), cx.ints([end]),
                 cx.const([dim], np.int64), cx.ints([step]), _dtype=cx.dtype(x))


@aten("select.int")
def select(cx, node, x, dim, index):
    rank = cx.rank(x)
    if isinstance(index, torch.fx.Node):
        idx = cx.scalar(index, torch.int64)
    else:
        idx = cx.const(np.asarray(index, np.int64))
    return cx.op("Gather", cx.v(x), idx, axis=dim % rank, _dtype=cx.dtype(x))


@aten("cat.default")
def cat(cx, node, tensors, dim=0):
    dtype = _out(cx)
    rank = len(cx.meta(node).shape)
    # Legacy cat skips 1-D empty tensors next to higher-rank ones.
    parts = [cx.cast(cx.v(t), dtype) for t in tensors
             if not (cx.rank(t) == 1 and rank > 1 and cx.static(cx.shape(t)[0]) == 0)]
    if len(parts) == 1:
        return parts[0]
    return cx.op("Concat", *parts, axis=dim % rank, _dtype=dtype)


def _split_by_sizes(cx, node, x, dim):
    rank = cx.rank(x)
    dim %= rank
    outs = cx.meta(node)
    sizes = [o.shape[dim] for o in outs]
    values = cx.op("Split", cx.v(x), cx.ints(sizes), axis=dim, _n=len(sizes),
                   _dtype=cx.dtype(x))
    return [values] if len(sizes) == 1 else list(values)


@aten("split_with_sizes.default", "split.Tensor")
def split(cx, node, x, sizes, dim=0):
    return _split_by_sizes(cx, node, x, dim)


@aten("unbind.int")
def unbind(cx, node, x, dim=0):
    parts = _split_by_sizes(cx, node, x, dim)
    return [_squeeze(cx, p, [dim % cx.rank(x)]) for p in parts]


@aten("flip.default")
def flip(cx, node, x, dims):
    rank = cx.rank(x)
    axes = cx.axes(dims, rank)
    n = len(axes)
    return cx.op("Slice", cx.v(x), cx.const([-1] * n, np.int64), cx.const([INT64_MIN] * n,
                                                                           np.int64),
                 cx.const(axes, np.int64), cx.const([-1] * n, np.int64), _dtype=cx.dtype(x))


@aten("repeat.default")
def repeat(cx, node, x, repeats):
    value = cx.v(x)
    extra = len(repeats) - cx.rank(x)
    if extra > 0:
        value = _unsqueeze(cx, value, list(range(extra)))
    return cx.op("Tile", value, cx.ints(repeats), _dtype=cx.dtype(x))


def _torch_pads_to_onnx(pad: list[int], rank: int) -> list[int]:
    """torch pads (last dim first, begin/end pairs) -> ONNX pads for every axis."""
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):
        axis = rank - 1 - i
        begins[axis], ends[axis] = pad[2 * i], pad[2 * i + 1]
    return begins + ends


@aten("constant_pad_nd.default")
def constant_pad(cx, node, x, pad, value=0):
    dtype = _out(cx)
    if any(cx.static(cx.meta(p)) is None for p in pad):
        raise Unsupported("symbolic pad widths")
    pads = _torch_pads_to_onnx([int(cx.static(cx.meta(p))) for p in pad], cx.rank(x))
    return cx.op("Pad", cx.v(x), cx.const(pads, np.int64), cx.scalar(value, dtype),
                 mode="constant", _dtype=dtype)


def _mode_pad(mode: str):
    def lower(cx, node, x, padding):
        pads = _torch_pads_to_onnx([int(p) for p in padding], cx.rank(x))
        return cx.op("Pad", cx.v(x), cx.const(pads, np.int64), mode=mode, _dtype=cx.dtype(x))

    return lower


for _d in (1, 2, 3):
    aten(f"reflection_pad{_d}d.default")(_mode_pad("reflect"))
    aten(f"replication_pad{_d}d.default")(_mode_pad("edge"))


@aten("pixel_shuffle.default")
def pixel_shuffle(cx, node, x, upscale_factor):
    if cx.rank(x) != 4:
        raise Unsupported("pixel_shuffle of a tensor that is not 4-D")
    return cx.op("DepthToSpace", cx.v(x), blocksize=int(upscale_factor), mode="CRD",
                 _dtype=cx.dtype(x))


@aten("tril.default", "triu.default")
def trilu(cx, node, x, diagonal=0):
    return cx.op("Trilu", cx.v(x), cx.const(np.asarray(diagonal, np.int64)),
                 upper=int(node.target is torch.ops.aten.triu.default), _dtype=cx.dtype(x))


# -- indexing ------------------------------------------------------------------------------------
@aten("embedding.default")
def embedding(cx, node, weight, indices, *rest):
    return cx.op("Gather", cx.v(weight), cx.v(indices), axis=0, _dtype=cx.dtype(weight))


@aten("index_select.default")
def index_select(cx, node, x, dim, index):
    return cx.op("Gather", cx.v(x), cx.v(index), axis=dim % max(cx.rank(x), 1),
                 _dtype=cx.dtype(x))


@aten("gather.default")
def gather(cx, node, x, dim, index, sparse_grad=False):
    return cx.op("GatherElements", cx.v(x), cx.v(index), axis=dim % max(cx.rank(x), 1),
                 _dtype=cx.dtype(x))


def _broadcast_indices(cx, indices: list) -> list:
    """Index tensors expanded to their common broadcast shape (int64)."""
    values = [cx.cast(cx.v(i), torch.int64) for i in indices]
    if len(values) == 1:
        return values
    total = values[0]
    for v in values[1:]:
        total = cx.op("Add", total, v, _dtype=torch.int64)
    shape = cx.shape_of(total)
    return [cx.op("Expand", v, shape, _dtype=torch.int64) for v in values]


def _check_index_dtypes(cx, indices):
    for i in indices:
        if i is not None and cx.dtype(i) in (torch.bool, torch.uint8):
            raise Unsupported("indexing with a boolean mask (the result size depends on the "
                              "data); use torch.where or masked_fill instead")


@aten("index.Tensor")
def index(cx, node, x, indices):
    _check_index_dtypes(cx, indices)
    rank = cx.rank(x)
    picked = [(d, i) for d, i in enumerate(indices) if i is not None]
    if len(picked) == 1:
        d, i = picked[0]
        return cx.op("Gather", cx.v(x), cx.cast(cx.v(i), torch.int64), axis=d,
                     _dtype=cx.dtype(x))
    dims = [d for d, _ in picked]
    rest = [d for d in range(rank) if d not in dims]
    expanded = _broadcast_indices(cx, [i for _, i in picked])
    stacked = cx.op("Concat", *[_unsqueeze(cx, e, [-1]) for e in expanded], axis=-1,
                    _dtype=torch.int64)
    xt = _transpose(cx, cx.v(x), dims + rest)
    out = cx.op("GatherND", xt, stacked, _dtype=cx.dtype(x))
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    if adjacent and dims[0] > 0:
        nb = len(cx.meta(node).shape) - len(rest)
        p = dims[0]
        perm = list(range(nb, nb + p)) + list(range(nb)) + list(range(nb + p, nb + len(rest)))
        out = _transpose(cx, out, perm)
    return out


@aten("index_put.default")
def index_put(cx, node, x, indices, values, accumulate=False):
    _check_index_dtypes(cx, indices)
    rank = cx.rank(x)
    picked = [(d, i) for d, i in enumerate(indices) if i is not None]
    dims = [d for d, _ in picked]
    rest = [d for d in range(rank) if d not in dims]
    dtype = cx.dtype(x)
    expanded = _broadcast_indices(cx, [i for _, i in picked])
    stacked = cx.op("Concat", *[_unsqueeze(cx, e, [-1]) for e in expanded], axis=-1,
                    _dtype=torch.int64)
    perm = dims + rest
    xt = _transpose(cx, cx.v(x), perm)
    # The updates have shape indices.shape[:-1] + xt.shape[len(dims):].
    upd_shape = cx.op("Concat", cx.shape_of(expanded[0]), cx.shape_of(xt, len(dims)), axis=0,
                      _dtype=torch.int64)
    vals = cx.cast(cx.v(values), dtype)
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    nb = max(cx.rank(i) for _, i in picked)
    if adjacent and dims[0] > 0 and cx.rank(values) > len(rest):
        # torch lays the broadcast index dims where the indexed dims were; move them first.
        if cx.rank(values) != nb + len(rest):
            raise Unsupported("index_put whose values broadcast over the index dims")
        p = dims[0]
        vals = _transpose(cx, vals, list(range(p, p + nb)) + list(range(p))
                          + list(range(p + nb, nb + len(rest))))
    upd = cx.op("Expand", vals, upd_shape, _dtype=dtype)
    out = cx.op("ScatterND", xt, stacked, upd, reduction="add" if accumulate else None,
                _dtype=dtype)
    inverse = [perm.index(i) for i in range(rank)]
    return _transpose(cx, out, inverse)


@aten("scatter.src", "scatter.value", "scatter.reduce", "scatter.value_reduce",
      "scatter_add.default")
def scatter(cx, node, x, dim, index, src, reduce=None):
    dtype = cx.dtype(x)
    target = node.target
    if target is torch.ops.aten.scatter_add.default:
        reduce = "add"
    if cx.is_tensor(src):
        updates = cx.cast(cx.v(src), dtype)
        if cx.shape(src) != cx.shape(index):
            # Only src's leading index.shape block is scattered.
            rank = cx.rank(src)
            updates = cx.op("Slice", updates, cx.const([0] * rank, np.int64),
                            cx.shape_of(cx.v(index)), cx.const(list(range(rank)), np.int64),
                            _dtype=dtype)
    else:
        updates = cx.op("Expand", cx.scalar(src, dtype), cx.shape_of(cx.v(index)), _dtype=dtype)
    reduction = {None: None, "add": "add", "sum": "add", "multiply": "mul"}.get(reduce, "?")
    if reduction == "?":
        raise Unsupported(f"scatter reduce={reduce!r}")
    return cx.op("ScatterElements", cx.v(x), cx.v(index), updates, axis=dim % cx.rank(x),
                 reduction=reduction, _dtype=dtype)


@aten("scatter_reduce.two")
def scatter_reduce(cx, node, x, dim, index, src, reduce, include_self=True):
    if not include_self:
        raise Unsupported("scatter_reduce with include_self=False")
    reduction = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min"}.get(reduce)
    if reduction is None:
        raise Unsupported(f"scatter_reduce reduce={reduce!r}")
    return cx.op("ScatterElements", cx.v(x), cx.v(index), cx.cast(cx.v(src), cx.dtype(x)),
                 axis=dim % cx.rank(x), reduction=reduction, _dtype=cx.dtype(x))


def _normalized_start(cx, x, dim, start):
    """``start`` (maybe negative or None) as a 0-d int64 index into ``x``'s dim."""
    size = cx.static(cx.shape(x)[dim])
    s = cx.static(cx.meta(start)) if start is not None else 0
    if s is not None and size is not None:
        s = s + size if s < 0 else s
        return cx.const(np.asarray(min(max(s, 0), size), np.int64))
    if s is not None and s >= 0:
        return cx.const(np.asarray(s, np.int64))
    value = cx.scalar(start, torch.int64)
    dim_size = cx.op("Squeeze", cx.shape_of(cx.v(x), dim, dim + 1), cx.const([0], np.int64),
                     _dtype=torch.int64)
    neg = cx.op("Less", value, cx.scalar(0, torch.int64), _dtype=torch.bool)
    return cx.op("Where", neg, cx.op("Add", value, dim_size, _dtype=torch.int64), value,
                 _dtype=torch.int64)


@aten("slice_scatter.default")
def slice_scatter(cx, node, x, src, dim=0, start=None, end=None, step=1):
    rank = cx.rank(x)
    dim %= rank
    dtype = cx.dtype(x)
    upd = cx.cast(cx.v(src), dtype)
    begin = _normalized_start(cx, x, dim, start)
    idx = _positions(cx, begin, step, upd, dim, rank)
    return cx.op("ScatterElements", cx.v(x), idx, upd, axis=dim, _dtype=dtype)


def _positions(cx, begin, step, like, axis, rank):
    """int64 positions begin + step * arange(n) along ``axis``, expanded to ``like``'s shape."""
    n = cx.op("Squeeze", cx.shape_of(like, axis, axis + 1), cx.const([0], np.int64),
              _dtype=torch.int64)
    pos = cx.op("Range", cx.scalar(0, torch.int64), n, cx.scalar(1, torch.int64),
                _dtype=torch.int64)
    if step != 1:
        pos = cx.op("Mul", pos, cx.scalar(step, torch.int64), _dtype=torch.int64)
    pos = cx.op("Add", pos, begin, _dtype=torch.int64)
    axes = [a for a in range(rank) if a != axis]
    if axes:
        pos = _unsqueeze(cx, pos, axes)
    return cx.op("Expand", pos, cx.shape_of(like), _dtype=torch.int64)


@aten("select_scatter.default")
def select_scatter(cx, node, x, src, dim, index):
    rank = cx.rank(x)
    dim %= rank
    dtype = cx.dtype(x)
    upd = _unsqueeze(cx, cx.cast(cx.v(src), dtype), [dim])
    begin = _normalized_start(cx, x, dim, index)
    idx = _positions(cx, begin, 1, upd, dim, rank)
    return cx.op("ScatterElements", cx.v(x), idx, upd, axis=dim, _dtype=dtype)


# -- linear algebra ------------------------------------------------------------------------------
@aten("mm.default", "bmm.default", "matmul.default", "mv.default", "dot.default")
def matmul(cx, node, a, b):
    dtype = _out(cx)
    return cx.op("MatMul", cx.cast(cx.v(a), dtype), cx.cast(cx.v(b), dtype), _dtype=dtype)


@aten("addmm.default")
def addmm(cx, node, bias, a, b, beta=1, alpha=1):
    dtype = _out(cx)
    if dtype in FLOATS:
        return cx.op("Gemm", cx.v(a), cx.v(b), cx.cast(cx.v(bias), dtype),
                     alpha=float(alpha), beta=float(beta), _dtype=dtype)
    prod = _scaled_value(cx, cx.op("MatMul", cx.v(a), cx.v(b), _dtype=dtype), alpha, dtype)
    return cx.op("Add", prod, _scaled_value(cx, cx.cast(cx.v(bias), dtype), beta, dtype),
                 _dtype=dtype)


def _scaled_value(cx, value, factor, dtype):
    if factor == 1:
        return value
    return cx.op("Mul", value, cx.scalar(factor, dtype), _dtype=dtype)


@aten("baddbmm.default", "addbmm.default")
def baddbmm(cx, node, bias, a, b, beta=1, alpha=1):
    dtype = _out(cx)
    prod = cx.op("MatMul", cx.v(a), cx.v(b), _dtype=dtype)
    if node.target is torch.ops.aten.addbmm.default:
        prod = cx.op("ReduceSum", prod, cx.const([0], np.int64), keepdims=0, _dtype=dtype)
    prod = _scaled_value(cx, prod, alpha, dtype)
    if beta == 0:
        return prod
    return cx.op("Add", prod, _scaled_value(cx, cx.cast(cx.v(bias), dtype), beta, dtype),
                 _dtype=dtype)


@aten("linear.default")
def linear(cx, node, x, weight, bias=None):
    dtype = _out(cx)
    if cx.rank(x) == 2 and cx.rank(weight) == 2 and dtype in FLOATS:
        return cx.op("Gemm", cx.v(x), cx.v(weight), cx.v(bias), transB=1, _dtype=dtype)
    wt = _transpose(cx, cx.v(weight), list(reversed(range(cx.rank(weight)))))
    y = cx.op("MatMul", cx.v(x), wt, _dtype=dtype)
    if bias is not None:
        y = cx.op("Add", y, cx.v(bias), _dtype=dtype)
    return y


@aten("einsum.default")
def einsum(cx, node, equation, tensors, path=None):
    dtype = _out(cx)
    return cx.op("Einsum", *[cx.cast(cx.v(t), dtype) for t in tensors],
                 equation=equation.replace(" ", ""), _dtype=dtype)


@aten("_trilinear.default")
def trilinear(cx, node, i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1):
    letters = "abcdefghijklmnopqrstuvwxyz"
    total = cx.rank(i1) + len(expand1)
    specs = []
    for expand in (expand1, expand2, expand3):
        specs.append("".join(letters[d] for d in range(total) if d not in expand))
    out = "".join(letters[d] for d in range(total) if d not in sumdim)
    dtype = _out(cx)
    return cx.op("Einsum", cx.v(i1), cx.v(i2), cx.v(i3), equation=f"{','.join(specs)}->{out}",
                 _dtype=dtype)


# -- convolution and pooling ---------------------------------------------------------------------
@aten("convolution.default")
def convolution(cx, node, x, weight, bias, stride, padding, dilation, transposed,
                output_padding, groups):
    n = cx.rank(x) - 2
    w_shape = cx.shape(weight)
    attrs = {"strides": _pair(stride, n), "pads": _pair(padding, n) * 2,
             "dilations": _pair(dilation, n), "group": int(groups),
             "kernel_shape": [int(d) for d in w_shape[2:]]}
    inputs = [cx.v(x), cx.v(weight)] + ([cx.v(bias)] if bias is not None else [])
    if transposed:
        outp = _pair(output_padding, n)
        return cx.op("ConvTranspose", *inputs, output_padding=outp if any(outp) else None,
                     _dtype=_out(cx), **attrs)
    return cx.op("Conv", *inputs, _dtype=_out(cx), **attrs)


def _pool_attrs(n, kernel_size, stride, padding, dilation=None):
    kernel = _pair(kernel_size, n)
    strides = _pair(stride, n) if stride else kernel
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": _pair(padding, n) * 2}
    if dilation is not None:
        attrs["dilations"] = _pair(dilation, n)
    return attrs


def _max_pool(cx, node, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    n = cx.rank(x) - 2
    attrs = _pool_attrs(n, kernel_size, stride, padding, dilation)
    dtype = cx.dtype(x)
    want_indices = 1 in cx.used_outputs()
    if not want_indices:
        return [cx.op("MaxPool", cx.v(x), ceil_mode=int(ceil_mode), _dtype=dtype, **attrs), None]
    y, idx = cx.op("MaxPool", cx.v(x), ceil_mode=int(ceil_mode), _n=2, **attrs)
    cx.typed(y, dtype)
    cx.typed(idx, torch.int64)
    # ONNX indices count over the whole tensor, torch's within each (n, c) plane.
    plane = cx.op("ReduceProd", cx.shape_of(cx.v(x), 2), keepdims=0, _dtype=torch.int64)
    return [y, cx.op("Mod", idx, plane, _dtype=torch.int64)]


aten("max_pool2d_with_indices.default", "max_pool3d_with_indices.default")(_max_pool)


@aten("max_pool1d.default", "max_pool2d.default", "max_pool3d.default")
def max_pool(cx, node, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    n = cx.rank(x) - 2
    attrs = _pool_attrs(n, kernel_size, stride, padding, dilation)
    return cx.op("MaxPool", cx.v(x), ceil_mode=int(ceil_mode), _dtype=cx.dtype(x), **attrs)


@aten("avg_pool1d.default", "avg_pool2d.default", "avg_pool3d.default")
def avg_pool(cx, node, x, kernel_size, stride=(), padding=0, ceil_mode=False,
             count_include_pad=True, divisor_override=None):
    if divisor_override is not None:
        raise Unsupported("avg_pool with divisor_override")
    n = cx.rank(x) - 2
    attrs = _pool_attrs(n, kernel_size, stride, padding)
    return cx.op("AveragePool", cx.v(x), ceil_mode=int(ceil_mode),
                 count_include_pad=int(count_include_pad), _dtype=cx.dtype(x), **attrs)


def _adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive(cx, node, x, output_size, kind: str):
    rank = cx.rank(x)
    n = len(output_size)
    spatial = [cx.static(d) for d in cx.shape(x)[rank - n:]]
    out = [int(o) for o in output_size]
    dtype = cx.dtype(x)
    value = cx.v(x)
    if all(o == 1 for o in out) and rank == n + 2:
        return cx.op("GlobalAveragePool" if kind == "avg" else "GlobalMaxPool", value,
                     _dtype=dtype)
    if any(s is None for s in spatial):
        raise Unsupported("adaptive pooling over symbolic spatial sizes")
    if all(s % o == 0 for s, o in zip(spatial, out)) and rank == n + 2:
        k = [s // o for s, o in zip(spatial, out)]
        return cx.op("AveragePool" if kind == "avg" else "MaxPool", value, kernel_shape=k,
                     strides=k, _dtype=dtype)
    if kind == "avg":
        # Overlapping windows: average with one (out x in) matrix per spatial axis.
        for i, (s, o) in enumerate(zip(spatial, out)):
            axis = rank - n + i
            mat = np.zeros((o, s), dtype=torch_to_dtype(dtype).numpy)
            for j, (a, b) in enumerate(_adaptive_windows(s, o)):
                mat[j, a:b] = 1.0 / (b - a)
            perm = list(range(rank))
            perm[axis], perm[-1] = perm[-1], perm[axis]
            moved = _transpose(cx, value, perm)
            moved = cx.op("MatMul", moved, cx.const(mat.T.copy()), _dtype=dtype)
            value = _transpose(cx, moved, perm)
        return value
    windows = [_adaptive_windows(s, o) for s, o in zip(spatial, out)]
    if math.prod(out) > 256:
        raise Unsupported("adaptive max pooling with uneven windows and a large output")
    for i, wins in enumerate(windows):
        axis = rank - n + i
        parts = []
        for a, b in wins:
            piece = cx.op("Slice", value, cx.const([a], np.int64), cx.const([b], np.int64),
                          cx.const([axis], np.int64), _dtype=dtype)
            parts.append(cx.op("ReduceMax", piece, cx.const([axis], np.int64), keepdims=1,
                               _dtype=dtype))
        value = cx.op("Concat", *parts, axis=axis, _dtype=dtype)
    return value


@aten("_adaptive_avg_pool2d.default", "_adaptive_avg_pool3d.default",
      "adaptive_avg_pool1d.default")
def adaptive_avg_pool(cx, node, x, output_size):
    return _adaptive(cx, node, x, output_size, "avg")


@aten("adaptive_max_pool2d.default", "adaptive_max_pool3d.default",
      "adaptive_max_pool1d.default")
def adaptive_max_pool(cx, node, x, output_size):
    if 1 in cx.used_outputs():
        raise Unsupported("the indices output of adaptive max pooling")
    return [_adaptive(cx, node, x, output_size, "max"), None]


# -- upsampling ----------------------------------------------------------------------------------
def _resize(cx, x, output_size, scale_factors, mode: str, coord: str, **extra):
    rank = cx.rank(x)
    n = rank - 2
    axes = list(range(2, rank))
    dtype = cx.dtype(x)
    if output_size is None and scale_factors is None:
        raise Unsupported("upsampling without output_size or scale_factors")
    if output_size is None and coord == "align_corners":
        # torch maps corners with the floored output length; ONNX with scales would use the
        # unfloored in * scale, so give the sizes instead.
        scales = np.asarray(_pair_float(scale_factors, n), np.float64)
        spatial = [cx.static(d) for d in cx.shape(x)[2:]]
        if all(s is not None for s in spatial):
            output_size = [math.floor(s * f) for s, f in zip(spatial, scales)]
        else:
            dims = cx.cast(cx.shape_of(cx.v(x), 2), torch.float64)
            scaled = cx.op("Floor", cx.op("Mul", dims, cx.const(scales), _dtype=torch.float64),
                           _dtype=torch.float64)
            sizes = cx.cast(scaled, torch.int64)
            return cx.op("Resize", cx.v(x), None, None, sizes, axes=axes, mode=mode,
                         coordinate_transformation_mode=coord, _dtype=dtype, **extra)
    if output_size is not None:
        return cx.op("Resize", cx.v(x), None, None, cx.ints(output_size), axes=axes, mode=mode,
                     coordinate_transformation_mode=coord, _dtype=dtype, **extra)
    scales = cx.const(np.asarray(_pair_float(scale_factors, n), np.float32))
    return cx.op("Resize", cx.v(x), None, scales, axes=axes, mode=mode,
                 coordinate_transformation_mode=coord, _dtype=dtype, **extra)


def _pair_float(values, n):
    vals = [float(v) for v in values]
    return vals * n if len(vals) == 1 else vals


@aten("upsample_nearest1d.vec", "upsample_nearest2d.vec", "upsample_nearest3d.vec")
def upsample_nearest(cx, node, x, output_size, scale_factors):
    return _resize(cx, x, output_size, scale_factors, "nearest", "asymmetric",
                   nearest_mode="floor")


@aten("_upsample_nearest_exact1d.vec", "_upsample_nearest_exact2d.vec",
      "_upsample_nearest_exact3d.vec")
def upsample_nearest_exact(cx, node, x, output_size, scale_factors):
    return _resize(cx, x, output_size, scale_factors, "nearest", "half_pixel",
                   nearest_mode="round_prefer_ceil")


@aten("upsample_linear1d.vec", "upsample_bilinear2d.vec", "upsample_trilinear3d.vec")
def upsample_linear(cx, node, x, output_size, align_corners, scale_factors):
    return _resize(cx, x, output_size, scale_factors, "linear",
                   "align_corners" if align_corners else "half_pixel")


@aten("upsample_bicubic2d.vec")
def upsample_bicubic(cx, node, x, output_size, align_corners, scale_factors):
    return _resize(cx, x, output_size, scale_factors, "cubic",
                   "align_corners" if align_corners else "half_pixel", cubic_coeff_a=-0.75)


def _default_overload_scales(output_size, scales):
    """The ``.default`` upsample overloads take per-axis scales that may be ``None``; torch
    maps coordinates with them when all are given, else with the size ratio."""
    if all(s is not None for s in scales) and scales:
        return None, [float(s) for s in scales]
    return output_size, None


@aten("upsample_nearest1d.default", "upsample_nearest2d.default", "upsample_nearest3d.default")
def upsample_nearest_default(cx, node, x, output_size, *scales):
    size, factors = _default_overload_scales(output_size, scales)
    return _resize(cx, x, size, factors, "nearest", "asymmetric", nearest_mode="floor")


@aten("_upsample_nearest_exact1d.default", "_upsample_nearest_exact2d.default",
      "_upsample_nearest_exact3d.default")
def upsample_nearest_exact_default(cx, node, x, output_size, *scales):
    size, factors = _default_overload_scales(output_size, scales)
    return _resize(cx, x, size, factors, "nearest", "half_pixel",
                   nearest_mode="round_prefer_ceil")


@aten("upsample_linear1d.default", "upsample_bilinear2d.default",
      "upsample_trilinear3d.default")
def upsample_linear_default(cx, node, x, output_size, align_corners, *scales):
    if align_corners:
        return _resize(cx, x, output_size, None, "linear", "align_corners")
    size, factors = _default_overload_scales(output_size, scales)
    return _resize(cx, x, size, factors, "linear", "half_pixel")


@aten("upsample_bicubic2d.default")
def upsample_bicubic_default(cx, node, x, output_size, align_corners, *scales):
    if align_corners:
        return _resize(cx, x, output_size, None, "cubic", "align_corners",
                       cubic_coeff_a=-0.75)
    size, factors = _default_overload_scales(output_size, scales)
    return _resize(cx, x, size, factors, "cubic", "half_pixel", cubic_coeff_a=-0.75)


# -- normalization -------------------------------------------------------------------------------
def _ones_or(cx, value, n: int, dtype, fill: float):
    if value is not None:
        return cx.cast(cx.v(value), dtype)
    return cx.const(np.full([n], fill, dtype=torch_to_dtype(dtype).numpy))


def _channels(cx, x) -> int:
    c = cx.static(cx.shape(x)[1])
    if c is None:
        raise Unsupported("normalization over a symbolic channel count")
    return c


@aten("_native_batch_norm_legit_no_training.default")
def batch_norm_inference(cx, node, x, weight, bias, running_mean, running_var, momentum, eps):
    if cx.used_outputs() - {0}:
        raise Unsupported("the saved mean/invstd outputs of batch norm")
    dtype = cx.dtype(x)
    c = _channels(cx, x)
    y = cx.op("BatchNormalization", cx.v(x), _ones_or(cx, weight, c, dtype, 1.0),
              _ones_or(cx, bias, c, dtype, 0.0), cx.cast(cx.v(running_mean), dtype),
              cx.cast(cx.v(running_var), dtype), epsilon=float(eps), _dtype=dtype)
    return [y, None, None]


@aten("_native_batch_norm_legit.no_stats", "_native_batch_norm_legit.default",
      "_native_batch_norm_legit_functional.default", "native_batch_norm.default")
def batch_norm_batch_stats(cx, node, x, weight, bias, *rest):
    """Batch statistics (training-mode batch norm, and instance norm's decomposition)."""
    target = node.target
    if target is torch.ops.aten._native_batch_norm_legit.no_stats:
        training, eps = rest[0], rest[2]
    else:
        training, eps = rest[2], rest[4]
        if not training:
            return batch_norm_inference(cx, node, x, weight, bias, rest[0], rest[1], rest[3],
                                        eps)
    if cx.used_outputs() - {0}:
        raise Unsupported("the saved mean/invstd outputs of batch norm")
    dtype = cx.dtype(x)
    rank = cx.rank(x)
    axes = cx.const([0] + list(range(2, rank)), np.int64)
    value = cx.v(x)
    mean = cx.op("ReduceMean", value, axes, keepdims=1, _dtype=dtype)
    centered = cx.op("Sub", value, mean, _dtype=dtype)
    var = cx.op("ReduceMean", cx.op("Mul", centered, centered, _dtype=dtype), axes, keepdims=1,
                _dtype=dtype)
    std = cx.op("Sqrt", cx.op("Add", var, cx.scalar(float(eps), dtype), _dtype=dtype),
                _dtype=dtype)
    y = cx.op("Div", centered, std, _dtype=dtype)
    expand = list(range(1, rank - 1))
    if weight is not None:
        y = cx.op("Mul", y, _unsqueeze(cx, cx.v(weight), expand) if expand else cx.v(weight),
                  _dtype=dtype)
    if bias is not None:
        y = cx.op("Add", y, _unsqueeze(cx, cx.v(bias), expand) if expand else cx.v(bias),
                  _dtype=dtype)
    extra = 2 if target is torch.ops.aten._native_batch_norm_legit.no_stats else 4
    return [y] + [None] * extra


@aten("native_layer_norm.default")
def layer_norm(cx, node, x, normalized_shape, weight, bias, eps):
    dtype = cx.dtype(x)
    k = len(normalized_shape)
    used = cx.used_outputs()
    norm = [cx.static(cx.meta(d)) for d in normalized_shape]
    if weight is None:
        if any(d is None for d in norm):
            raise Unsupported("layer_norm without weight over symbolic sizes")
        scale = cx.const(np.ones(norm, dtype=torch_to_dtype(dtype).numpy))
    else:
        scale = cx.v(weight)
    nout = 3 if used & {1, 2} else 1
    outs = cx.op("LayerNormalization", cx.v(x), scale, cx.v(bias), axis=-k, epsilon=float(eps),
                 _n=nout)
    outs = (outs,) if nout == 1 else outs
    for o in outs:
        cx.typed(o, dtype)
    return list(outs) + [None] * (3 - nout)


@aten("native_group_norm.default")
def group_norm(cx, node, x, weight, bias, n, c, hxw, group, eps):
    if cx.used_outputs() - {0}:
        raise Unsupported("the mean/rstd outputs of group norm")
    dtype = cx.dtype(x)
    channels = _channels(cx, x)
    y = cx.op("GroupNormalization", cx.v(x), _ones_or(cx, weight, channels, dtype, 1.0),
              _ones_or(cx, bias, channels, dtype, 0.0), num_groups=int(group),
              epsilon=float(eps), _dtype=dtype)
    return [y, None, None]


# -- softmax and reductions ----------------------------------------------------------------------
@aten("_softmax.default", "softmax.int", "_safe_softmax.default")
def softmax(cx, node, x, dim, half_to_float=False):
    dtype = _out(cx)
    value = cx.cast(cx.v(x), dtype)
    rank = max(cx.rank(x), 1)
    y = cx.op("Softmax", value, axis=dim % rank, _dtype=dtype)
    if node.target is torch.ops.aten._safe_softmax.default:
        # Rows that are all -inf give 0 instead of NaN.
        isinf = cx.op("IsInf", value, detect_positive=0, _dtype=torch.bool)
        all_inf = cx.op("ReduceMin", cx.cast(isinf, torch.int32), cx.const([dim % rank],
                                                                          np.int64),
                        keepdims=1, _dtype=torch.int32)
        y = cx.op("Where", cx.cast(all_inf, torch.bool), cx.scalar(0.0, dtype), y,
                  _dtype=dtype)
    return y


@aten("_log_softmax.default", "log_softmax.int")
def log_softmax(cx, node, x, dim, half_to_float=False):
    dtype = _out(cx)
    return cx.op("LogSoftmax", cx.cast(cx.v(x), dtype), axis=dim % max(cx.rank(x), 1),
                 _dtype=dtype)


def _reduce_axes(cx, x, dims) -> list[int] | None:
    """Normalized axes, or ``None`` for "all" (torch's empty dim list)."""
    rank = cx.rank(x)
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return None
    if isinstance(dims, int):
        dims = [dims]
    return [d % max(rank, 1) for d in dims]


def _reduce(cx, onnx_op, value, axes, keepdim, dtype):
    if axes is None:
        return cx.op(onnx_op, value, keepdims=int(bool(keepdim)), _dtype=dtype)
    return cx.op(onnx_op, value, cx.const(axes, np.int64), keepdims=int(bool(keepdim)),
                 _dtype=dtype)


def _reduction(onnx_op: str):
    def lower(cx, node, x, dims=None, keepdim=False, dtype=None):
        if cx.rank(x) == 0:
            return cx.cast(cx.v(x), _out(cx))
        out = _out(cx)
        axes = _reduce_axes(cx, x, dims)
        return _reduce(cx, onnx_op, cx.cast(cx.v(x), out), axes, keepdim, out)

    return lower


aten("sum.dim_IntList")(_reduction("ReduceSum"))
aten("mean.dim")(_reduction("ReduceMean"))


@aten("sum.default", "mean.default")
def reduce_all(cx, node, x, dtype=None):
    op = "ReduceSum" if node.target is torch.ops.aten.sum.default else "ReduceMean"
    out = _out(cx)
    return _reduce(cx, op, cx.cast(cx.v(x), out), None, False, out)


@aten("prod.dim_int", "prod.default")
def prod(cx, node, x, *args):
    out = _out(cx)
    if node.target is torch.ops.aten.prod.default:
        return _reduce(cx, "ReduceProd", cx.cast(cx.v(x), out), None, False, out)
    dim, keepdim = args[0], args[1]
    return _reduce(cx, "ReduceProd", cx.cast(cx.v(x), out), _reduce_axes(cx, x, dim), keepdim,
                   out)


def _minmax_value(onnx_op: str):
    def lower(cx, node, x, dims=(), keepdim=False):
        dtype = cx.dtype(x)
        value = cx.v(x)
        if dtype == torch.bool:
            res = _reduce(cx, onnx_op, cx.cast(value, torch.int32), _reduce_axes(cx, x, dims),
                          keepdim, torch.int32)
            return cx.cast(res, torch.bool)
        return _reduce(cx, onnx_op, value, _reduce_axes(cx, x, dims), keepdim, dtype)

    return lower


aten("amax.default")(_minmax_value("ReduceMax"))
aten("amin.default")(_minmax_value("ReduceMin"))


@aten("max.default", "min.default")
def max_all(cx, node, x):
    op = "ReduceMax" if node.target is torch.ops.aten.max.default else "ReduceMin"
    return _minmax_value(op)(cx, node, x, (), False)


def _arg_reduce(cx, onnx_op, x, dim, keepdim):
    value = cx.v(x)
    if dim is None:
        value = _reshape(cx, value, [-1])
        out = cx.op(onnx_op, value, axis=0, keepdims=0, _dtype=torch.int64)
        if keepdim:
            out = _reshape(cx, out, [1] * cx.rank(x))
        return out
    return cx.op(onnx_op, value, axis=dim % max(cx.rank(x), 1), keepdims=int(bool(keepdim)),
                 _dtype=torch.int64)


@aten("argmax.default")
def argmax(cx, node, x, dim=None, keepdim=False):
    return _arg_reduce(cx, "ArgMax", x, dim, keepdim)


@aten("argmin.default")
def argmin(cx, node, x, dim=None, keepdim=False):
    return _arg_reduce(cx, "ArgMin", x, dim, keepdim)


@aten("max.dim", "min.dim")
def max_dim(cx, node, x, dim, keepdim=False):
    is_max = node.target is torch.ops.aten.max.dim
    values = _minmax_value("ReduceMax" if is_max else "ReduceMin")(cx, node, x, [dim], keepdim)
    indices = None
    if 1 in cx.used_outputs():
        indices = _arg_reduce(cx, "ArgMax" if is_max else "ArgMin", x, dim, keepdim)
    return [values, indices]


def _bool_reduce(onnx_op: str):
    def lower(cx, node, x, dims=None, keepdim=False):
        as_int = cx.cast(cx.cast(cx.v(x), torch.bool), torch.int32)
        if cx.rank(x) == 0:
            return cx.cast(as_int, torch.bool)
        res = _reduce(cx, onnx_op, as_int, _reduce_axes(cx, x, dims), keepdim, torch.int32)
        return cx.cast(res, torch.bool)

    return lower


aten("any.dim", "any.dims", "any.default")(_bool_reduce("ReduceMax"))
aten("all.dim", "all.dims", "all.default")(_bool_reduce("ReduceMin"))


def _count(cx, x, axes) -> Any:
    """Number of elements reduced over ``axes`` (float tensor of x's dtype)."""
    dtype = cx.dtype(x)
    shape = cx.shape(x)
    sel = range(cx.rank(x)) if axes is None else axes
    static = [cx.static(shape[a]) for a in sel]
    if all(s is not None for s in static):
        return cx.scalar(float(math.prod(static)), dtype)
    dims = cx.op("Gather", cx.shape_of(cx.v(x)), cx.const(list(sel), np.int64), axis=0,
                 _dtype=torch.int64)
    return cx.cast(cx.op("ReduceProd", dims, keepdims=0, _dtype=torch.int64), dtype)


@aten("var.correction", "var.dim", "var.default")
def var(cx, node, x, dims=None, correction=None, keepdim=False):
    if node.target is torch.ops.aten.var.default:
        dims, correction, keepdim = None, 1 if dims is None or dims else 0, False
    elif node.target is torch.ops.aten.var.dim:
        correction = 1 if correction is None or correction is True else (
            0 if correction is False else correction)
    correction = 1 if correction is None else correction
    dtype = cx.dtype(x)
    axes = _reduce_axes(cx, x, dims)
    value = cx.v(x)
    mean = _reduce(cx, "ReduceMean", value, axes, True, dtype)
    centered = cx.op("Sub", value, mean, _dtype=dtype)
    total = _reduce(cx, "ReduceSum", cx.op("Mul", centered, centered, _dtype=dtype), axes,
                    keepdim, dtype)
    n = _count(cx, x, axes)
    if correction:
        n = cx.op("Sub", n, cx.scalar(float(correction), dtype), _dtype=dtype)
    return cx.op("Div", total, n, _dtype=dtype)


@aten("linalg_vector_norm.default")
def vector_norm(cx, node, x, ord=2, dims=None, keepdim=False, dtype=None):
    out = _out(cx)
    value = cx.cast(cx.v(x), out)
    axes = _reduce_axes(cx, x, dims)
    ord = float(ord)
    if ord == 2:
        return _reduce(cx, "ReduceL2", value, axes, keepdim, out)
    if ord == 1:
        return _reduce(cx, "ReduceL1", value, axes, keepdim, out)
    absval = cx.op("Abs", value, _dtype=out)
    if ord == math.inf:
        return _reduce(cx, "ReduceMax", absval, axes, keepdim, out)
    if ord == -math.inf:
        return _reduce(cx, "ReduceMin", absval, axes, keepdim, out)
    if ord == 0:
        nonzero = cx.cast(cx.op("Not", cx.op("Equal", value, cx.scalar(0, out),
                                             _dtype=torch.bool), _dtype=torch.bool), out)
        return _reduce(cx, "ReduceSum", nonzero, axes, keepdim, out)
    powered = cx.op("Pow", absval, cx.scalar(ord, out), _dtype=out)
    total = _reduce(cx, "ReduceSum", powered, axes, keepdim, out)
    return cx.op("Pow", total, cx.scalar(1.0 / ord, out), _dtype=out)


@aten("cumsum.default")
def cumsum(cx, node, x, dim, dtype=None):
    out = _out(cx)
    return cx.op("CumSum", cx.cast(cx.v(x), out), cx.const(np.asarray(dim % max(cx.rank(x), 1),
                                                                      np.int64)), _dtype=out)


@aten("cumprod.default")
def cumprod(cx, node, x, dim, dtype=None):
    """Inclusive product scan by doubling: log2(n) shifted multiplies (CumProd is opset 26)."""
    out = _out(cx)
    rank = max(cx.rank(x), 1)
    axis = dim % rank
    size = cx.static(cx.shape(x)[axis]) if cx.rank(x) else 1
    if size is None:
        raise Unsupported("cumprod over a symbolic length")
    value = cx.cast(cx.v(x), out)
    shift = 1
    while shift < size:
        pads = [0] * (2 * rank)
        pads[axis] = shift
        padded = cx.op("Pad", value, cx.const(pads, np.int64), cx.scalar(1, out),
                       mode="constant", _dtype=out)
        shifted = cx.op("Slice", padded, cx.const([0], np.int64), cx.const([size], np.int64),
                        cx.const([axis], np.int64), _dtype=out)
        value = cx.op("Mul", value, shifted, _dtype=out)
        shift *= 2
    return value


def _topk(cx, x, k, dim, largest):
    rank = max(cx.rank(x), 1)
    k_value = cx.ints([k])
    values, indices = cx.op("TopK", cx.v(x), k_value, axis=dim % rank, largest=int(largest),
                            sorted=1, _n=2)
    cx.typed(values, cx.dtype(x))
    cx.typed(indices, torch.int64)
    return values, indices


@aten("topk.default")
def topk(cx, node, x, k, dim=-1, largest=True, sorted=True):
    # sorted=False leaves the order unspecified in torch; sorted output is one valid order.
    return list(_topk(cx, x, k, dim, largest))


@aten("sort.default", "sort.stable")
def sort(cx, node, x, *args):
    if node.target is torch.ops.aten.sort.stable:
        dim, descending = args[1], args[2]
    else:
        dim, descending = args[0], args[1]
    rank = max(cx.rank(x), 1)
    n = cx.shape(x)[dim % rank] if cx.rank(x) else 1
    return list(_topk(cx, x, n, dim, descending))


def _median_k(cx, value, axis: int | None):
    """``k = (n - 1) // 2 + 1`` (1-D, one element) for the length along ``axis`` (all: None)."""
    shape = cx.shape_of(value) if axis is None else cx.shape_of(value, axis, axis + 1)
    n = cx.op("ReduceProd", shape, keepdims=1, _dtype=torch.int64)
    half = cx.op("Div", cx.op("Sub", n, cx.const([1], np.int64), _dtype=torch.int64),
                 cx.const([2], np.int64), _dtype=torch.int64)
    return half, cx.op("Add", half, cx.const([1], np.int64), _dtype=torch.int64)


def _lower_median(cx, value, axis: int, dtype, keepdim: bool, want_indices: bool):
    """torch's median is the lower median: the ((n - 1) // 2)-th smallest value."""
    half, k = _median_k(cx, value, axis)
    values, indices = cx.op("TopK", value, k, axis=axis, largest=0, sorted=1, _n=2)
    outs = []
    for v, dt in ((values, dtype), (indices, torch.int64)):
        if dt == torch.int64 and not want_indices:
            outs.append(None)
            continue
        picked = cx.op("Gather", v, half, axis=axis, _dtype=dt)
        outs.append(picked if keepdim else _squeeze(cx, picked, [axis]))
    return outs


@aten("median.dim")
def median_dim(cx, node, x, dim, keepdim=False):
    axis = dim % max(cx.rank(x), 1)
    return _lower_median(cx, cx.v(x), axis, cx.dtype(x), keepdim, 1 in cx.used_outputs())


@aten("median.default")
def median_all(cx, node, x):
    flat = _reshape(cx, cx.v(x), [-1])
    return _lower_median(cx, flat, 0, cx.dtype(x), False, False)[0]


# -- recurrent networks --------------------------------------------------------------------------
def _rnn_weights(cx, params, layer: int, num_dirs: int, has_biases: bool, gate_order: list[int],
                 gates: int):
    """ONNX W, R, B for one layer from torch's per-direction weights (gates reordered)."""
    per = 4 if has_biases else 2
    ws, rs, bs = [], [], []
    for d in range(num_dirs):
        base = (layer * num_dirs + d) * per
        arrays = []
        for p in params[base:base + per]:
            value = cx.v(p)
            if value.const_value is None:
                raise Unsupported("RNN weights that are computed, not parameters")
            arrays.append(np.asarray(value.const_value))
        w_ih, w_hh = arrays[0], arrays[1]
        hidden = w_hh.shape[1]
        if w_ih.shape[0] != gates * hidden:
            raise Unsupported("RNN with projections (proj_size > 0)")

        def reorder(a):
            blocks = np.split(a, gates, axis=0)
            return np.concatenate([blocks[g] for g in gate_order], axis=0)

        ws.append(reorder(w_ih))
        rs.append(reorder(w_hh))
        if has_biases:
            bs.append(np.concatenate([reorder(arrays[2]), reorder(arrays[3])]))
        else:
            bs.append(np.zeros(2 * gates * hidden, dtype=w_ih.dtype))
    name = f"{cx.node.name}_l{layer}"
    return (cx.const(np.stack(ws), name=f"{name}_W"), cx.const(np.stack(rs), name=f"{name}_R"),
            cx.const(np.stack(bs), name=f"{name}_B"), hidden)


def _rnn(cx, node, onnx_op: str, x, hx: list, params, has_biases, num_layers, train,
         bidirectional, batch_first, gate_order, gates, **attrs):
    if train:
        raise Unsupported(f"{onnx_op} in training mode (dropout between layers)")
    num_dirs = 2 if bidirectional else 1
    dtype = cx.dtype(x)
    seq = cx.v(x)
    if batch_first:
        seq = _transpose(cx, seq, [1, 0, 2])
    hx_values = [cx.v(h) for h in hx]
    finals: list[list] = [[] for _ in hx_values]
    direction = "bidirectional" if bidirectional else "forward"
    for layer in range(num_layers):
        w, r, b, hidden = _rnn_weights(cx, params, layer, num_dirs, has_biases, gate_order,
                                       gates)
        states = []
        for h in hx_values:
            states.append(cx.op("Slice", h, cx.const([layer * num_dirs], np.int64),
                                cx.const([(layer + 1) * num_dirs], np.int64),
                                cx.const([0], np.int64), _dtype=dtype))
        nout = 1 + len(hx_values)
        outs = cx.op(onnx_op, seq, w, r, b, None, *states, hidden_size=hidden,
                     direction=direction, _n=nout, _dtype=dtype, **attrs)
        y = outs[0]
        for i, state in enumerate(outs[1:]):
            finals[i].append(state)
        # Y is [seq, dirs, batch, hidden]; the next layer wants [seq, batch, dirs * hidden].
        y = _transpose(cx, y, [0, 2, 1, 3])
        seq = cx.op("Reshape", y, cx.const([0, 0, -1], np.int64), _dtype=dtype)
    output = _transpose(cx, seq, [1, 0, 2]) if batch_first else seq
    results = [output]
    for parts in finals:
        results.append(parts[0] if len(parts) == 1 else cx.op("Concat", *parts, axis=0,
                                                               _dtype=dtype))
    return results


@aten("lstm.input")
def lstm(cx, node, x, hx, params, has_biases, num_layers, dropout, train, bidirectional,
         batch_first):
    # torch gates i, f, g, o -> ONNX i, o, f, c
    return _rnn(cx, node, "LSTM", x, hx, params, has_biases, num_layers, train, bidirectional,
                batch_first, [0, 3, 1, 2], 4)


@aten("gru.input")
def gru(cx, node, x, hx, params, has_biases, num_layers, dropout, train, bidirectional,
        batch_first):
    # torch gates r, z, n -> ONNX z, r, h; torch applies r after the recurrent matmul.
    return _rnn(cx, node, "GRU", x, [hx], params, has_biases, num_layers, train, bidirectional,
                batch_first, [1, 0, 2], 3, linear_before_reset=1)


@aten("rnn_tanh.input", "rnn_relu.input")
def simple_rnn(cx, node, x, hx, params, has_biases, num_layers, dropout, train, bidirectional,
               batch_first):
    act = "Tanh" if node.target is torch.ops.aten.rnn_tanh.input else "Relu"
    dirs = 2 if bidirectional else 1
    return _rnn(cx, node, "RNN", x, [hx], params, has_biases, num_layers, train, bidirectional,
                batch_first, [0], 1, activations=[act] * dirs)
