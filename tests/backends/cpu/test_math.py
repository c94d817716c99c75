"""Elementwise math kernels against ``onnx.reference`` (and ONNX Runtime where the reference
does not define a case), per registered op version, dtype and broadcasting pattern."""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import (
    BF16,
    assert_close,
    check_kernel,
    dtype_tolerance,
    new_types,
    onnxruntime,
    random_array,
    schema_types,
    type_params,
)
from oracle import schema_versions as versions

from pyflame_rt.backends.cpu import math as cpu_math
from pyflame_rt.ops import lookup


def rand(rng: np.random.Generator, shape, dtype, low: float = -4.0, high: float = 4.0):
    return random_array(rng, shape, dtype, low, high)


def tol(dtype) -> dict:
    return dtype_tolerance(dtype, 2e-2, 2e-3, (1e-5, 1e-6))


def check(fn, op: str, inputs: list, attrs: dict | None = None, *, opset: int, **kw) -> None:
    """``check_kernel`` plus: the kernel is the one registered for ``opset`` and it leaves its
    inputs untouched."""
    assert lookup(op, opset=opset).fn is fn, f"{op}-{opset} resolves to another kernel"
    copies = [None if x is None else np.array(x, copy=True) for x in inputs]
    check_kernel(fn, op, inputs, attrs, opset=opset, **kw)
    for before, after in zip(copies, inputs):
        if before is None:
            continue
        if before.dtype == object:
            assert before.tolist() == after.tolist(), f"{op} modified an input"
        else:  # bytes, so that NaN payloads of every float type compare too
            assert before.tobytes() == after.tobytes(), f"{op} modified an input"


BROADCAST_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (2, 3))]


# --------------------------------------------------------------------------------------------
# Binary arithmetic

ARITH = {"Add": cpu_math.add, "Sub": cpu_math.sub, "Mul": cpu_math.mul, "Div": cpu_math.div}


@pytest.mark.parametrize("op", list(ARITH))
@pytest.mark.parametrize("opset,dtype", type_params("Add", 7))
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_arithmetic(op, opset, dtype, shapes):
    rng = np.random.default_rng(0)
    a = rand(rng, shapes[0], dtype, -20, 20)
    b = rand(rng, shapes[1], dtype, -20, 20)
    if op == "Div" and dtype.kind in "iu":
        b = np.where(b == 0, 3, b).astype(dtype)  # integer division by zero is undefined
    check(ARITH[op], op, [a, b], opset=opset, **tol(dtype))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_integer_div_truncates_toward_zero(dtype):
    a = np.array([7, -7, 7, -7, 6, -6, 0, 1, -1], dtype=dtype)
    b = np.array([2, 2, -2, -2, 3, -3, 5, -4, 4], dtype=dtype)
    check(cpu_math.div, "Div", [a, b], opset=14)
    assert_close(cpu_math.div(a, b), onnxruntime("Div", [a, b], opset=14)[0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # raised inside onnx.reference
def test_float_div_by_zero_gives_inf_and_nan():
    a = np.array([1.0, -1.0, 0.0], dtype=np.float32)
    check(cpu_math.div, "Div", [a, np.zeros(3, np.float32)], opset=14)


def test_incompatible_broadcast_raises_value_error():
    with pytest.raises(ValueError):
        cpu_math.add(np.ones((2, 3), np.float32), np.ones((4,), np.float32))
    with pytest.raises(ValueError):
        cpu_math.where(np.ones((2,), bool), np.ones((3,), np.float32), np.ones((2,), np.float32))


@pytest.mark.parametrize("fn,op", [(cpu_math.add, "Add"), (cpu_math.sqrt, "Sqrt"),
                                   (cpu_math.equal, "Equal"), (cpu_math.sum_, "Sum")])
def test_scalars_come_back_as_0d_arrays(fn, op):
    x = np.asarray(np.float32(2.0))
    out = fn(x) if op == "Sqrt" else fn(x, x)
    assert isinstance(out, np.ndarray) and out.shape == ()


# --------------------------------------------------------------------------------------------
# Unary math: (op, kernel, first version, input range)

UNARY = [
    ("Neg", cpu_math.neg, 6, -5, 5), ("Abs", cpu_math.abs_, 6, -5, 5),
    ("Sqrt", cpu_math.sqrt, 6, 0, 9), ("Exp", cpu_math.exp, 6, -5, 5),
    ("Log", cpu_math.log, 6, 0.1, 9), ("Reciprocal", cpu_math.reciprocal, 6, 0.5, 5),
    ("Floor", cpu_math.floor, 6, -5, 5), ("Ceil", cpu_math.ceil, 6, -5, 5),
    ("Round", cpu_math.round_, 11, -5, 5), ("Sign", cpu_math.sign, 9, -3, 3),
    ("Erf", cpu_math.erf_, 9, -3, 3),
    ("Sin", cpu_math.sin, 7, -4, 4), ("Cos", cpu_math.cos, 7, -4, 4),
    ("Tan", cpu_math.tan, 7, -1.2, 1.2), ("Asin", cpu_math.asin, 7, -0.99, 0.99),
    ("Acos", cpu_math.acos, 7, -0.99, 0.99), ("Atan", cpu_math.atan, 7, -5, 5),
    ("Sinh", cpu_math.sinh, 9, -3, 3), ("Cosh", cpu_math.cosh, 9, -3, 3),
    ("Asinh", cpu_math.asinh, 9, -5, 5), ("Acosh", cpu_math.acosh, 9, 1.01, 6),
    ("Atanh", cpu_math.atanh, 9, -0.95, 0.95),
]
UNARY_CASES = [pytest.param(fn, op, opset, dt, lo, hi, id=f"{op}-{opset}-{dt}")
               for op, fn, first, lo, hi in UNARY for opset, dt in new_types(op, first)]


@pytest.mark.parametrize("fn,op,opset,dtype,low,high", UNARY_CASES)
def test_unary(fn, op, opset, dtype, low, high):
    x = rand(np.random.default_rng(1), (3, 5), dtype, low, high)
    check(fn, op, [x], opset=opset, **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, BF16])
def test_round_halves_to_even(dtype):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.3, -2.7], dtype=dtype)
    check(cpu_math.round_, "Round", [x], opset=22)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # raised inside onnx.reference
def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=np.float32)
    for fn, op in [(cpu_math.sign, "Sign"), (cpu_math.floor, "Floor"), (cpu_math.exp, "Exp"),
                   (cpu_math.sqrt, "Sqrt"), (cpu_math.log, "Log"), (cpu_math.erf_, "Erf")]:
        check(fn, op, [x], opset=13)


def test_erf_float32_within_two_ulp():
    # float32 Erf is a polynomial approximation; compare with the stdlib on a dense grid.
    x = np.concatenate([np.linspace(-6, 6, 20001), [1.0, 2.5, 4.0, -1.0, -2.5, -4.0, 1e-30]])
    x = x.astype(np.float32)
    expected = np.array([math.erf(float(v)) for v in x], dtype=np.float32)
    got = cpu_math.erf_(x)
    assert got.dtype == np.float32
    ulps = np.abs(got.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    assert ulps.max() <= 2, f"max error {ulps.max()} ulp at x={x[ulps.argmax()]}"
    assert np.signbit(cpu_math.erf_(np.array([-0.0], np.float32)))[0]


def test_erf_float64_is_exact():
    # onnx.reference computes Erf in float32 whatever the input type; the stdlib is exact.
    x = np.linspace(-4, 4, 41)
    expected = np.array([math.erf(v) for v in x])
    assert_close(cpu_math.erf_(x), expected, rtol=1e-15, atol=1e-16)


# --------------------------------------------------------------------------------------------
# Pow with mixed base / exponent types


POW_CASES = []
for _v in versions("Pow", 7):
    _pairs = {(t, t) for t in schema_types("Pow", _v)} if _v < 12 else \
        {(t, t1) for t in schema_types("Pow", _v) for t1 in schema_types("Pow", _v, "T1")}
    for _t, _t1 in sorted(_pairs, key=str):
        POW_CASES.append(pytest.param(_v, _t, _t1, id=f"{_v}-{_t}-{_t1}"))


@pytest.mark.parametrize("opset,base,exponent", POW_CASES)
def test_pow(opset, base, exponent):
    rng = np.random.default_rng(2)
    # Negative bases only with integer exponents, so that every result is real.
    x = rand(rng, (2, 3, 4), base, -3 if exponent.kind in "iu" else 0.5, 3)
    y = rand(rng, (4,), exponent, 0, 3)
    check(cpu_math.pow_, "Pow", [x, y], opset=opset, **tol(base))


def test_pow_integer_negative_exponent_matches_onnxruntime():
    # onnx.reference raises on integer ** negative integer; ONNX Runtime defines it via C pow.
    x = np.array([2, -3, 1, -1, -1, 5], dtype=np.int32)
    y = np.array([-1, -2, -5, -3, -4, 0], dtype=np.int64)
    assert_close(cpu_math.pow_(x, y), onnxruntime("Pow", [x, y], opset=15)[0])


# --------------------------------------------------------------------------------------------
# Mod


@pytest.mark.parametrize("opset,dtype", type_params("Mod", 10))
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod(opset, dtype, fmod):
    rng = np.random.default_rng(3)
    a = rand(rng, (3, 4), dtype, -20, 20)
    b = rand(rng, (4,), dtype, -6, 6)
    b = np.where(b == 0, 3, b).astype(dtype)
    if dtype.kind == "f" or dtype == BF16:
        a = a.astype(np.float32).round(1).astype(dtype)  # exactly representable-ish values
    check(cpu_math.mod, "Mod", [a, b], {"fmod": fmod}, opset=opset, **tol(dtype))


def test_mod_rejects_bad_fmod():
    with pytest.raises(ValueError, match="fmod"):
        cpu_math.mod(np.ones(2, np.int32), np.ones(2, np.int32), fmod=2)


# --------------------------------------------------------------------------------------------
# Variadic ops

VARIADIC = {"Sum": cpu_math.sum_, "Mean": cpu_math.mean, "Max": cpu_math.max_,
            "Min": cpu_math.min_}
VARIADIC_SHAPES = [[(3, 4)], [(3, 4), (3, 4)], [(2, 3, 4), (4,), (3, 1)]]


@pytest.mark.parametrize("op", list(VARIADIC))
@pytest.mark.parametrize("shapes", VARIADIC_SHAPES, ids=len)
def test_variadic(op, shapes):
    for opset, dtype in new_types(op, 8):
        rng = np.random.default_rng(4)
        inputs = [rand(rng, s, dtype, -9, 9) for s in shapes]
        check(VARIADIC[op], op, inputs, opset=opset, **tol(dtype))


@pytest.mark.parametrize("op", list(VARIADIC))
def test_variadic_opset6_same_shapes(op):
    rng = np.random.default_rng(5)
    inputs = [rand(rng, (2, 3), np.float32) for _ in range(3)]
    check(VARIADIC[op], op, inputs, opset=6)


def test_max_min_propagate_nan():
    a = np.array([1.0, np.nan, 3.0], np.float32)
    b = np.array([np.nan, 2.0, 1.0], np.float32)
    check(cpu_math.max_, "Max", [a, b], opset=13)
    check(cpu_math.min_, "Min", [a, b], opset=13)


# --------------------------------------------------------------------------------------------
# Clip


@pytest.mark.parametrize("attrs", [{}, {"min": -1.5}, {"max": 0.5}, {"min": -1.0, "max": 2.0},
                                   {"min": 1.0, "max": -1.0}])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_clip_6_attributes(attrs, dtype):
    x = rand(np.random.default_rng(6), (3, 4), dtype)
    check(cpu_math.clip_6, "Clip", [x], attrs, opset=6, **tol(dtype))


@pytest.mark.parametrize("bounds", ["none", "min", "max", "both", "inverted"])
def test_clip_11_inputs(bounds):
    for opset, dtype in new_types("Clip", 11):
        x = rand(np.random.default_rng(7), (3, 4), dtype, -9, 9)
        lo = np.asarray(2 if dtype.kind == "u" else -2, dtype=dtype)
        hi = np.asarray(5, dtype=dtype)
        inputs = {"none": [x], "min": [x, lo], "max": [x, None, hi], "both": [x, lo, hi],
                  "inverted": [x, hi, lo]}[bounds]
        check(cpu_math.clip_11, "Clip", inputs, opset=opset, **tol(dtype))


def test_clip_rejects_non_scalar_bound():
    with pytest.raises(ValueError, match="scalar"):
        cpu_math.clip_11(np.ones(3, np.float32), np.zeros(2, np.float32))


# --------------------------------------------------------------------------------------------
# Comparisons, logic, bitwise, predicates, Where

COMPARE = {"Equal": cpu_math.equal, "Greater": cpu_math.greater, "Less": cpu_math.less,
           "GreaterOrEqual": cpu_math.greater_or_equal, "LessOrEqual": cpu_math.less_or_equal}


@pytest.mark.parametrize("op", list(COMPARE))
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_compare(op, shapes):
    first = 12 if op.endswith("OrEqual") else 7
    for opset, dtype in new_types(op, first):
        rng = np.random.default_rng(8)
        if dtype == object:
            a = rng.choice(np.array(["a", "b", "c"], dtype=object), size=shapes[0])
            b = rng.choice(np.array(["a", "b", "c"], dtype=object), size=shapes[1])
        else:  # few distinct values, so equality happens
            a, b = rand(rng, shapes[0], dtype, 0, 3), rand(rng, shapes[1], dtype, 0, 3)
        check(COMPARE[op], op, [a, b], opset=opset)


LOGIC = {"And": cpu_math.and_, "Or": cpu_math.or_, "Xor": cpu_math.xor}


@pytest.mark.parametrize("op", list(LOGIC))
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
def test_logic(op, shapes):
    rng = np.random.default_rng(9)
    check(LOGIC[op], op, [rand(rng, shapes[0], bool), rand(rng, shapes[1], bool)], opset=7)


def test_not():
    check(cpu_math.not_, "Not", [rand(np.random.default_rng(10), (3, 4), bool)], opset=1)


BITWISE = {"BitwiseAnd": cpu_math.bitwise_and, "BitwiseOr": cpu_math.bitwise_or,
           "BitwiseXor": cpu_math.bitwise_xor}


@pytest.mark.parametrize("op", list(BITWISE))
@pytest.mark.parametrize("dtype", schema_types("BitwiseAnd", 18), ids=str)
def test_bitwise_binary(op, dtype):
    rng = np.random.default_rng(11)
    a, b = rand(rng, (3, 4), dtype, -100, 100), rand(rng, (4,), dtype, -100, 100)
    check(BITWISE[op], op, [a, b], opset=18)


@pytest.mark.parametrize("dtype", schema_types("BitwiseNot", 18), ids=str)
def test_bitwise_not(dtype):
    x = rand(np.random.default_rng(12), (3, 4), dtype, -100, 100)
    check(cpu_math.bitwise_not, "BitwiseNot", [x], opset=18)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("opset,dtype", type_params("BitShift", 11))
def test_bit_shift(direction, opset, dtype):
    rng = np.random.default_rng(13)
    bits = dtype.itemsize * 8
    x = rand(rng, (3, 4), dtype, -100, 100)
    y = rand(rng, (4,), dtype, 0, bits - 1)
    check(cpu_math.bit_shift, "BitShift", [x, y], {"direction": direction}, opset=opset)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.uint64, np.int64])
def test_bit_shift_out_of_range_amounts(direction, dtype):
    # BitShift-28: a shift by >= the width, or by a negative amount, yields the fill alone.
    bits = np.dtype(dtype).itemsize * 8
    x = np.array([1, 5, 100, 3, 7], dtype=dtype)
    y = np.array([bits, bits + 3, 1, 2, bits - 1], dtype=dtype)
    if np.dtype(dtype).kind == "i":
        x = np.array([1, -5, -100, 3, -7], dtype=dtype)
        y = np.array([bits, -1, 1, bits + 3, bits - 1], dtype=dtype)
    check(cpu_math.bit_shift, "BitShift", [x, y], {"direction": direction}, opset=28)


def test_bit_shift_requires_direction():
    x = np.ones(2, np.uint8)
    with pytest.raises(ValueError, match="direction"):
        cpu_math.bit_shift(x, x)
    with pytest.raises(ValueError, match="direction"):
        cpu_math.bit_shift(x, x, direction="UP")


@pytest.mark.parametrize("opset,dtype", type_params("IsNaN", 9, "T1"))
def test_is_nan(opset, dtype):
    x = np.array([1.0, np.nan, -np.inf, np.inf, 0.0, -2.5], np.float32).astype(dtype)
    check(cpu_math.is_nan, "IsNaN", [x], opset=opset)


@pytest.mark.parametrize("opset,dtype", type_params("IsInf", 10, "T1"))
@pytest.mark.parametrize("detect", [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_is_inf(opset, dtype, detect):
    x = np.array([1.0, np.nan, -np.inf, np.inf, 0.0, -2.5], np.float32).astype(dtype)
    attrs = {"detect_negative": detect[0], "detect_positive": detect[1]}
    check(cpu_math.is_inf, "IsInf", [x], attrs, opset=opset)


@pytest.mark.parametrize("opset,dtype", type_params("Where", 9))
def test_where(opset, dtype):
    rng = np.random.default_rng(14)
    cond = rand(rng, (3, 1), bool)
    if dtype == object:
        x = np.array(["a", "b", "c", "d"], dtype=object)
        y = np.array([["w"], ["x"], ["y"]], dtype=object)
    else:
        x, y = rand(rng, (4,), dtype), rand(rng, (3, 4), dtype)
    check(cpu_math.where, "Where", [cond, x, y], opset=opset)
