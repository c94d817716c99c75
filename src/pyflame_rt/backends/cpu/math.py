"""CPU kernels for elementwise math, comparison, logical and bitwise ONNX ops.

Everything is vectorized numpy except erf, a numba loop. Binary ops use numpy (multidirectional)
broadcasting, which is ONNX broadcasting from opset 7 on; incompatible shapes raise numpy's
``ValueError``. The narrow
float types that numpy only knows through ``ml_dtypes`` (bfloat16, float8) are computed in
float32 and cast back, so no kernel depends on which ufuncs ``ml_dtypes`` happens to provide.
Results are always arrays (0-d for scalars), never numpy scalars.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import ml_dtypes
import numpy as np

from ...ops import kernel

__all__ = [
    "abs_",
    "acos",
    "acosh",
    "add",
    "and_",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "bit_shift",
    "bitwise_and",
    "bitwise_not",
    "bitwise_or",
    "bitwise_xor",
    "ceil",
    "clip_6",
    "clip_11",
    "cos",
    "cosh",
    "div",
    "equal",
    "erf",
    "erf_",
    "exp",
    "floor",
    "greater",
    "greater_or_equal",
    "is_inf",
    "is_nan",
    "less",
    "less_or_equal",
    "log",
    "max_",
    "mean",
    "min_",
    "mod",
    "mul",
    "neg",
    "not_",
    "or_",
    "pow_",
    "reciprocal",
    "round_",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "sub",
    "sum_",
    "tan",
    "where",
    "xor",
]

# ml_dtypes floats: numpy stores them but has no native arithmetic for them.
_NARROW_FLOATS = frozenset(np.dtype(t) for t in (
    ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
    ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz,
))


def _widen(x: np.ndarray) -> np.ndarray:
    """``x`` in a dtype numpy computes in natively: narrow floats become float32."""
    return x.astype(np.float32) if x.dtype in _NARROW_FLOATS else x


def _widen16(x: np.ndarray) -> np.ndarray:
    """Like :func:`_widen` but float16 too, for multi-step formulas that lose precision."""
    if x.dtype in _NARROW_FLOATS or x.dtype == np.float16:
        return x.astype(np.float32)
    return x


def _cast(y, dtype: np.dtype) -> np.ndarray:
    """``y`` as an array of ``dtype`` (float to int truncates; NaN/inf casts are quiet)."""
    y = np.asarray(y)
    if y.dtype == dtype:
        return y
    with np.errstate(invalid="ignore", over="ignore"):
        return y.astype(dtype)


def _unary(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` elementwise, computing narrow floats in float32; domain errors are quiet."""
    with np.errstate(all="ignore"):
        return _cast(fn(_widen(x)), x.dtype)


def _binary(a: np.ndarray, b: np.ndarray, fn: Callable) -> np.ndarray:
    """Apply a broadcasting binary ``fn``; the result keeps ``a``'s dtype (ONNX: A and B share T)."""
    if a.dtype in _NARROW_FLOATS or b.dtype in _NARROW_FLOATS:
        return _cast(fn(_widen(a), _widen(b)), a.dtype)
    return np.asarray(fn(a, b))


def _predicate(a: np.ndarray, b: np.ndarray, fn: Callable) -> np.ndarray:
    """A broadcasting comparison; returns bool."""
    return np.asarray(fn(_widen(a), _widen(b)))


def _require_str(value, name: str, allowed: tuple[str, ...]) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    if value not in allowed:
        raise ValueError(f"attribute {name!r} must be one of {', '.join(allowed)}; got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# erf. numpy has none. float64 uses libm's erf (exact); float32 uses piecewise polynomials that
# LLVM can vectorize, since numba compiles math.erf to one scalar libm call per element (about
# 6x slower). The loops are compiled by numba on first use and cached on disk.
#
# erf(t), t = |x|, is t * P0(2t^2 - 1) on [0, 1), P1((t - 1.75) / 0.75) on [1, 2.5) and
# P2((t - 3.25) / 0.75) on [2.5, 4); it rounds to 1 in float32 from 4 on. The coefficients
# (highest power first) are least-squares Chebyshev fits of math.erf at 4000 Chebyshev nodes
# per interval, converted to powers: max abs error 1.6e-8, under half a float32 ulp of 1.
_ERF_P0 = (1.2316401729179468e-06, -1.766908081238413e-05, 0.00021751198975790325,
           -0.0022854195288915455, 0.0198524977227796, -0.14053609728153735,
           0.9654687386375509)
_ERF_P1 = (-1.8886233474043228e-05, 6.474366162382733e-05, 6.64662629165302e-05,
           -0.0008058083173135103, 0.0015986155955035818, 0.0015705942941283786,
           -0.015220626814300706, 0.03803536574220489, -0.051950319542786255,
           0.03958123350592224, 0.9866716702913432)
_ERF_P2 = (-8.254535908722165e-06, 2.659981123492412e-05, -4.6903680846966826e-05,
           7.165763143696015e-05, -9.065911499837272e-05, 8.336952907848281e-05,
           -5.3363792974843894e-05, 2.1835405915681205e-05, 0.9999956972853457)


def _erf_f32_loop(x, out):  # compiled by numba; x and out are 1-D float32
    for i in range(x.size):
        v = np.float64(x[i])
        t = abs(v)
        # Every piece is evaluated and one selected: branch-free code vectorizes.
        u = 2.0 * t * t - 1.0
        r0 = _ERF_P0[0]
        for k in range(1, len(_ERF_P0)):
            r0 = r0 * u + _ERF_P0[k]
        u = (t - 1.75) * (1.0 / 0.75)
        r1 = _ERF_P1[0]
        for k in range(1, len(_ERF_P1)):
            r1 = r1 * u + _ERF_P1[k]
        u = (t - 3.25) * (1.0 / 0.75)
        r2 = _ERF_P2[0]
        for k in range(1, len(_ERF_P2)):
            r2 = r2 * u + _ERF_P2[k]
        r = t * r0 if t < 1.0 else (r1 if t < 2.5 else (r2 if t < 4.0 else 1.0))
        r = v if math.isnan(v) else r
        out[i] = math.copysign(r, v)


def _erf_f64_loop(x, out):  # compiled by numba; x and out are 1-D float64
    for i in range(x.size):
        out[i] = math.erf(x[i])


@functools.cache
def _erf_loops():
    import numba  # imported lazily: only models with Erf/Gelu pay for the JIT

    # "contract" allows FMA only: unlike full fastmath it keeps NaN/inf semantics.
    jit = numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
    return {np.dtype(np.float32): jit(_erf_f32_loop), np.dtype(np.float64): jit(_erf_f64_loop)}


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise error function: float64 stays float64, every other float gives float32."""
    if x.dtype != np.float64 and x.dtype != np.float32:
        x = x.astype(np.float32)
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _erf_loops()[x.dtype](x.reshape(-1), out.reshape(-1))
    return out


# ---------------------------------------------------------------------------------------------
# Arithmetic


@kernel("Add", since=7)
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Add-7/13/14: A + B with broadcasting (integers wrap)."""
    return _binary(a, b, np.add)


@kernel("Sub", since=7)
def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Sub-7/13/14: A - B with broadcasting (integers wrap)."""
    return _binary(a, b, np.subtract)


@kernel("Mul", since=7)
def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Mul-7/13/14: A * B with broadcasting (integers wrap)."""
    return _binary(a, b, np.multiply)


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # C semantics: the quotient truncates toward zero. a - fmod(a, b) is an exact multiple of
    # b, so floor division of it equals truncated division of a. Division by zero gives 0.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.floor_divide(np.subtract(a, np.fmod(a, b)), b)


@kernel("Div", since=7)
def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Div-7/13/14: A / B with broadcasting; integer division truncates toward zero."""
    if a.dtype.kind in "iu":
        return np.asarray(_int_div(a, b))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _binary(a, b, np.divide)


@kernel("Neg", since=6)
def neg(x: np.ndarray) -> np.ndarray:
    """ONNX Neg-6/13: -X."""
    return _unary(x, np.negative)


@kernel("Abs", since=6)
def abs_(x: np.ndarray) -> np.ndarray:
    """ONNX Abs-6/13: |X|."""
    return _unary(x, np.abs)


@kernel("Sqrt", since=6)
def sqrt(x: np.ndarray) -> np.ndarray:
    """ONNX Sqrt-6/13: square root (NaN for negative inputs)."""
    return _unary(x, np.sqrt)


@kernel("Exp", since=6)
def exp(x: np.ndarray) -> np.ndarray:
    """ONNX Exp-6/13: e ** X."""
    return _unary(x, np.exp)


@kernel("Log", since=6)
def log(x: np.ndarray) -> np.ndarray:
    """ONNX Log-6/13: natural logarithm (-inf at 0, NaN below)."""
    return _unary(x, np.log)


@kernel("Reciprocal", since=6)
def reciprocal(x: np.ndarray) -> np.ndarray:
    """ONNX Reciprocal-6/13: 1 / X."""
    return _unary(x, np.reciprocal)


@kernel("Floor", since=6)
def floor(x: np.ndarray) -> np.ndarray:
    """ONNX Floor-6/13: round toward -inf."""
    return _unary(x, np.floor)


@kernel("Ceil", since=6)
def ceil(x: np.ndarray) -> np.ndarray:
    """ONNX Ceil-6/13: round toward +inf."""
    return _unary(x, np.ceil)


@kernel("Round", since=11)
def round_(x: np.ndarray) -> np.ndarray:
    """ONNX Round-11/22: round to nearest, halves to even."""
    return _unary(x, np.round)  # numpy rounds halves to even


@kernel("Sign", since=9)
def sign(x: np.ndarray) -> np.ndarray:
    """ONNX Sign-9/13: -1, 0 or 1 by the sign of X (NaN stays NaN)."""
    return _unary(x, np.sign)


@kernel("Erf", since=9)
def erf_(x: np.ndarray) -> np.ndarray:
    """ONNX Erf-9/13: the error function (integer inputs of Erf-9 are computed in float64)."""
    if x.dtype.kind in "iu":
        return _cast(erf(x.astype(np.float64)), x.dtype)
    return _cast(erf(x), x.dtype)


@kernel("Pow", since=7)
def pow_(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ONNX Pow-7/12/13/15: X ** Y with broadcasting; the result has X's type, Y may differ."""
    if x.dtype.kind in "iu" and y.dtype.kind in "iu":
        # Integer power in int64 (wrapping like C). numpy refuses negative integer exponents;
        # like C's pow cast back to int, trunc(x ** -n) is 1 for x == 1, +-1 for x == -1 and
        # 0 otherwise (0 ** -n is undefined in ONNX and gives 0 here).
        xi = x.astype(np.int64)
        yi = y.astype(np.int64)
        negative = yi < 0
        with np.errstate(over="ignore"):
            out = np.power(xi, np.where(negative, 0, yi))
        if negative.any():
            neg_result = np.where(xi == 1, 1, np.where(xi == -1, 1 - 2 * (yi & 1), 0))
            out = np.where(negative, neg_result, out)
        return _cast(out, x.dtype)
    xw, yw = _widen(x), _widen(y)
    if x.dtype.kind in "iu":
        xw = xw.astype(np.float64)  # integer base, float exponent: C pow in double, truncated
    elif yw.dtype.kind in "iu":
        yw = yw.astype(np.result_type(xw.dtype, np.float32))
    with np.errstate(all="ignore"):
        return _cast(np.power(xw, yw), x.dtype)


@kernel("Mod", since=10)
def mod(a: np.ndarray, b: np.ndarray, *, fmod: int = 0) -> np.ndarray:
    """ONNX Mod-10/13/28: remainder; fmod=0 takes B's sign (floor), fmod=1 A's sign (C fmod)."""
    if fmod not in (0, 1):
        raise ValueError(f"Mod attribute 'fmod' must be 0 or 1, got {fmod}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return _binary(a, b, np.fmod if fmod else np.mod)


def _variadic(inputs: tuple[np.ndarray, ...], fn: Callable, op: str) -> np.ndarray:
    if not inputs or any(x is None for x in inputs):
        raise ValueError(f"{op} needs at least one input and no omitted inputs")
    if len(inputs) == 1:
        return inputs[0].copy()
    out = _widen(inputs[0])
    for x in inputs[1:]:
        out = fn(out, _widen(x))
    return _cast(out, inputs[0].dtype)


@kernel("Sum", since=6)
def sum_(*data: np.ndarray) -> np.ndarray:
    """ONNX Sum-6/8/13: elementwise sum of all inputs with broadcasting."""
    return _variadic(data, np.add, "Sum")


@kernel("Mean", since=6)
def mean(*data: np.ndarray) -> np.ndarray:
    """ONNX Mean-6/8/13: elementwise mean of all inputs with broadcasting."""
    if not data or any(x is None for x in data):
        raise ValueError("Mean needs at least one input and no omitted inputs")
    total = _variadic(tuple(_widen16(x) for x in data), np.add, "Mean")
    return _cast(total / len(data), data[0].dtype)


@kernel("Max", since=6)
def max_(*data: np.ndarray) -> np.ndarray:
    """ONNX Max-6/8/12/13: elementwise maximum of all inputs with broadcasting (NaN wins)."""
    return _variadic(data, np.maximum, "Max")


@kernel("Min", since=6)
def min_(*data: np.ndarray) -> np.ndarray:
    """ONNX Min-6/8/12/13: elementwise minimum of all inputs with broadcasting (NaN wins)."""
    return _variadic(data, np.minimum, "Min")


def _clip(x: np.ndarray, lo, hi) -> np.ndarray:
    # numpy clips as min(max(x, lo), hi): when lo > hi every element becomes hi, as the spec
    # says. NaN stays NaN.
    w = _widen(x)
    if lo is not None and hi is not None:
        out = np.clip(w, lo, hi)
    elif lo is not None:
        out = np.maximum(w, lo)
    elif hi is not None:
        out = np.minimum(w, hi)
    else:
        return x.copy()
    return _cast(out, x.dtype)


_FLT_MAX = float(np.finfo(np.float32).max)


@kernel("Clip", since=6)
def clip_6(x: np.ndarray, *, min: float = -_FLT_MAX, max: float = _FLT_MAX) -> np.ndarray:
    """ONNX Clip-6: clamp X to the attributes [min, max]."""
    dtype = _widen(x).dtype
    with np.errstate(over="ignore"):  # the float32 defaults overflow to +-inf in float16
        lo, hi = np.asarray(float(min), dtype=dtype), np.asarray(float(max), dtype=dtype)
    return _clip(x, lo, hi)


def _clip_bound(bound: np.ndarray | None, name: str) -> np.ndarray | None:
    if bound is None:
        return None
    bound = np.asarray(bound)
    if bound.size != 1:
        raise ValueError(f"Clip input {name!r} must be a scalar, got shape {bound.shape}")
    return _widen(bound.reshape(()))


@kernel("Clip", since=11)
def clip_11(x: np.ndarray, min: np.ndarray | None = None,
            max: np.ndarray | None = None) -> np.ndarray:
    """ONNX Clip-11/12/13: clamp X to the optional scalar inputs [min, max]."""
    return _clip(x, _clip_bound(min, "min"), _clip_bound(max, "max"))


# ---------------------------------------------------------------------------------------------
# Trigonometric and hyperbolic functions


@kernel("Sin", since=7)
def sin(x: np.ndarray) -> np.ndarray:
    """ONNX Sin-7/22: sine."""
    return _unary(x, np.sin)


@kernel("Cos", since=7)
def cos(x: np.ndarray) -> np.ndarray:
    """ONNX Cos-7/22: cosine."""
    return _unary(x, np.cos)


@kernel("Tan", since=7)
def tan(x: np.ndarray) -> np.ndarray:
    """ONNX Tan-7/22: tangent."""
    return _unary(x, np.tan)


@kernel("Asin", since=7)
def asin(x: np.ndarray) -> np.ndarray:
    """ONNX Asin-7/22: arcsine (NaN outside [-1, 1])."""
    return _unary(x, np.arcsin)


@kernel("Acos", since=7)
def acos(x: np.ndarray) -> np.ndarray:
    """ONNX Acos-7/22: arccosine (NaN outside [-1, 1])."""
    return _unary(x, np.arccos)


@kernel("Atan", since=7)
def atan(x: np.ndarray) -> np.ndarray:
    """ONNX Atan-7/22: arctangent."""
    return _unary(x, np.arctan)


@kernel("Sinh", since=9)
def sinh(x: np.ndarray) -> np.ndarray:
    """ONNX Sinh-9/22: hyperbolic sine."""
    return _unary(x, np.sinh)


@kernel("Cosh", since=9)
def cosh(x: np.ndarray) -> np.ndarray:
    """ONNX Cosh-9/22: hyperbolic cosine."""
    return _unary(x, np.cosh)


@kernel("Asinh", since=9)
def asinh(x: np.ndarray) -> np.ndarray:
    """ONNX Asinh-9/22: inverse hyperbolic sine."""
    return _unary(x, np.arcsinh)


@kernel("Acosh", since=9)
def acosh(x: np.ndarray) -> np.ndarray:
    """ONNX Acosh-9/22: inverse hyperbolic cosine (NaN below 1)."""
    return _unary(x, np.arccosh)


@kernel("Atanh", since=9)
def atanh(x: np.ndarray) -> np.ndarray:
    """ONNX Atanh-9/22: inverse hyperbolic tangent (+-inf at +-1, NaN outside)."""
    return _unary(x, np.arctanh)


# ---------------------------------------------------------------------------------------------
# Comparison, logical and bitwise ops, predicates, Where


@kernel("Equal", since=7)
def equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Equal-7/11/13/19: A == B with broadcasting (numbers, bool, strings)."""
    return _predicate(a, b, np.equal)


@kernel("Greater", since=7)
def greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Greater-7/9/13: A > B with broadcasting."""
    return _predicate(a, b, np.greater)


@kernel("GreaterOrEqual", since=12)
def greater_or_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX GreaterOrEqual-12/16: A >= B with broadcasting."""
    return _predicate(a, b, np.greater_equal)


@kernel("Less", since=7)
def less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Less-7/9/13: A < B with broadcasting."""
    return _predicate(a, b, np.less)


@kernel("LessOrEqual", since=12)
def less_or_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX LessOrEqual-12/16: A <= B with broadcasting."""
    return _predicate(a, b, np.less_equal)


@kernel("Not", since=1)
def not_(x: np.ndarray) -> np.ndarray:
    """ONNX Not-1: logical not of a bool tensor."""
    return np.asarray(np.logical_not(x))


@kernel("And", since=7)
def and_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX And-7: logical and with broadcasting."""
    return np.asarray(np.logical_and(a, b))


@kernel("Or", since=7)
def or_(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Or-7: logical or with broadcasting."""
    return np.asarray(np.logical_or(a, b))


@kernel("Xor", since=7)
def xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Xor-7: logical xor with broadcasting."""
    return np.asarray(np.logical_xor(a, b))


@kernel("BitShift", since=11)
def bit_shift(x: np.ndarray, y: np.ndarray, *, direction: str | None = None) -> np.ndarray:
    """ONNX BitShift-11/28: shift X left or right by Y bits (right shift of signed X is arithmetic)."""
    if direction is None:
        raise ValueError("BitShift requires the attribute 'direction' (\"LEFT\" or \"RIGHT\")")
    direction = _require_str(direction, "direction", ("LEFT", "RIGHT"))
    bits = x.dtype.itemsize * 8
    # Shifting by a negative amount or by >= the bit width is undefined in C; BitShift-28 defines
    # it as what the fill alone gives: 0, or -1 for a right shift of a negative X.
    out_of_range = (y < 0) | (y >= bits)
    amount = np.where(out_of_range, 0, y).astype(x.dtype)
    if direction == "LEFT":
        out = np.left_shift(x, amount)
        fill = np.zeros((), dtype=x.dtype)
    else:
        out = np.right_shift(x, amount)
        fill = np.where(x < 0, -1, 0).astype(x.dtype) if x.dtype.kind == "i" \
            else np.zeros((), dtype=x.dtype)
    if out_of_range.any():
        out = np.where(out_of_range, fill, out)
    return _cast(out, x.dtype)


@kernel("BitwiseAnd", since=18)
def bitwise_and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX BitwiseAnd-18: A & B with broadcasting."""
    return np.asarray(np.bitwise_and(a, b))


@kernel("BitwiseOr", since=18)
def bitwise_or(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX BitwiseOr-18: A | B with broadcasting."""
    return np.asarray(np.bitwise_or(a, b))


@kernel("BitwiseXor", since=18)
def bitwise_xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX BitwiseXor-18: A ^ B with broadcasting."""
    return np.asarray(np.bitwise_xor(a, b))


@kernel("BitwiseNot", since=18)
def bitwise_not(x: np.ndarray) -> np.ndarray:
    """ONNX BitwiseNot-18: ~X."""
    return np.asarray(np.invert(x))


@kernel("IsNaN", since=9)
def is_nan(x: np.ndarray) -> np.ndarray:
    """ONNX IsNaN-9/13/20: True where X is NaN."""
    return np.asarray(np.isnan(_widen(x)))


@kernel("IsInf", since=10)
def is_inf(x: np.ndarray, *, detect_negative: int = 1, detect_positive: int = 1) -> np.ndarray:
    """ONNX IsInf-10/20: True where X is +inf (detect_positive) or -inf (detect_negative)."""
    w = _widen(x)
    if detect_negative and detect_positive:
        return np.asarray(np.isinf(w))
    if detect_negative:
        return np.asarray(np.isneginf(w))
    if detect_positive:
        return np.asarray(np.isposinf(w))
    return np.zeros(x.shape, dtype=np.bool_)


@kernel("Where", since=9)
def where(condition: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ONNX Where-9/16: X where condition else Y, all three broadcast together."""
    return np.asarray(np.where(condition, x, y))
