"""Reduce* and ArgMax/ArgMin kernels against ``onnx.reference`` (ONNX Runtime where the
reference has no implementation), for both the attribute and the input form of ``axes``."""

from __future__ import annotations

import numpy as np
import onnx.defs
import pytest
from oracle import (
    assert_close,
    check_kernel,
    dtype_tolerance,
    onnxruntime,
    random_array,
    reference,
    schema_types,
)

from pyflame_rt.backends.cpu import reduction as red
from pyflame_rt.ops import lookup


def rand(rng: np.random.Generator, shape, dtype, low: float, high: float):
    return random_array(rng, shape, dtype, low, high)


def tol(dtype) -> dict:
    return dtype_tolerance(dtype, 3e-2, 3e-3, (1e-5, 1e-5))


def check(fn, op: str, inputs: list, attrs: dict | None = None, *, opset: int,
          oracle: str = "reference", **kw) -> None:
    """Compare ``fn`` with an oracle; also: ``fn`` is what the registry picks at ``opset`` and
    the inputs are left untouched."""
    assert lookup(op, opset=opset).fn is fn, f"{op}-{opset} resolves to another kernel"
    copies = [None if x is None else np.array(x, copy=True) for x in inputs]
    if oracle == "reference":
        check_kernel(fn, op, inputs, attrs, opset=opset, **kw)
    elif oracle == "reference_as_T":  # values from the reference, type from the spec (T)
        expected = reference(op, inputs, attrs, opset=opset)[0].astype(inputs[0].dtype)
        assert_close(fn(*inputs, **(attrs or {})), expected, **kw)
    else:
        assert oracle == "onnxruntime"
        expected = onnxruntime(op, inputs, attrs, opset=opset)[0]
        assert_close(fn(*inputs, **(attrs or {})), expected, **kw)
    for before, after in zip(copies, inputs):
        if before is not None:
            assert before.tobytes() == after.tobytes(), f"{op} modified an input"


# --------------------------------------------------------------------------------------------
# Reduce*: op -> (attribute-form kernel, input-form kernel, first input-form opset, value range)

REDUCE = {
    "ReduceSum": (red.reduce_sum_1, red.reduce_sum_13, 13, (-5, 5)),
    "ReduceMean": (red.reduce_mean_1, red.reduce_mean_18, 18, (-5, 5)),
    "ReduceMax": (red.reduce_max_1, red.reduce_max_18, 18, (-5, 5)),
    "ReduceMin": (red.reduce_min_1, red.reduce_min_18, 18, (-5, 5)),
    "ReduceProd": (red.reduce_prod_1, red.reduce_prod_18, 18, (-2, 2)),
    "ReduceL1": (red.reduce_l1_1, red.reduce_l1_18, 18, (-5, 5)),
    "ReduceL2": (red.reduce_l2_1, red.reduce_l2_18, 18, (-5, 5)),
    "ReduceLogSum": (red.reduce_log_sum_1, red.reduce_log_sum_18, 18, (0.1, 5)),
    "ReduceLogSumExp": (red.reduce_log_sum_exp_1, red.reduce_log_sum_exp_18, 18, (-5, 5)),
    "ReduceSumSquare": (red.reduce_sum_square_1, red.reduce_sum_square_18, 18, (-5, 5)),
}
AXES = [None, [1], [0, 2], [-1], [-3, -2, -1]]


def oracle_for(op: str, dtype: np.dtype) -> str | None:
    """Which oracle computes ``op`` on ``dtype`` faithfully (None: none does)."""
    if dtype.kind not in "iu":
        return "reference"
    if op == "ReduceLogSumExp":
        # onnx.reference lacks integer ReduceLogSumExp and ONNX Runtime truncates every exp
        # term to an integer before summing (so it returns int(log(#maxima) + max)); ONNX
        # dropped these types in opset 28. Nothing to compare the float64-then-truncate with.
        return None
    if op == "ReduceLogSum":
        # onnx.reference lacks integer ReduceLogSum; ONNX Runtime has int32/int64 only.
        return "onnxruntime" if dtype.kind == "i" else None
    if op == "ReduceSumSquare" and dtype.itemsize < 8:
        return "reference_as_T"  # onnx.reference widens int32/uint32 sums of squares to 64 bits
    return "reference"


def reduce_cases(form: str) -> list:
    cases = []
    for op, (attr_fn, input_fn, input_since, _) in REDUCE.items():
        if form == "attribute":
            opsets = [11] + ([13] if input_since > 13 else [])
        else:
            opsets = [input_since] + [v for v in (20, 28) if onnx.defs.get_schema(
                op, v).since_version == v]
        seen: set = set()
        for opset in opsets:
            for dtype in schema_types(op, opset):
                if dtype not in seen and oracle_for(op, dtype) is not None:
                    seen.add(dtype)
                    fn = attr_fn if form == "attribute" else input_fn
                    cases.append(pytest.param(fn, op, opset, dtype, id=f"{op}-{opset}-{dtype}"))
    return cases


def reduce_input(op: str, dtype: np.dtype, shape=(2, 3, 4)) -> np.ndarray:
    low, high = REDUCE[op][3]
    if dtype.kind in "iu" and op == "ReduceLogSum":
        low = 1  # a positive integer sum
    return rand(np.random.default_rng(30), shape, dtype, low, high)


@pytest.mark.parametrize("fn,op,opset,dtype", reduce_cases("attribute"))
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_attribute_axes(fn, op, opset, dtype, keepdims):
    x = reduce_input(op, dtype)
    for axes in AXES:
        attrs = {"keepdims": keepdims} if axes is None else {"axes": axes, "keepdims": keepdims}
        check(fn, op, [x], attrs, opset=opset, oracle=oracle_for(op, dtype), **tol(dtype))


@pytest.mark.parametrize("fn,op,opset,dtype", reduce_cases("input"))
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_input_axes(fn, op, opset, dtype, keepdims):
    x = reduce_input(op, dtype)
    for axes in AXES:
        inputs = [x] if axes is None else [x, np.array(axes, np.int64)]
        check(fn, op, inputs, {"keepdims": keepdims}, opset=opset,
              oracle=oracle_for(op, dtype), **tol(dtype))


@pytest.mark.parametrize("op", list(REDUCE))
@pytest.mark.parametrize("noop", [0, 1])
@pytest.mark.parametrize("omitted", [True, False], ids=["omitted", "empty"])
def test_reduce_empty_axes_input(op, noop, omitted):
    # No axes: reduce everything, or with noop_with_empty_axes apply only the elementwise part.
    _, fn, opset, _ = REDUCE[op]
    x = reduce_input(op, np.dtype(np.float32))
    inputs = [x] if omitted else [x, np.array([], np.int64)]
    check(fn, op, inputs, {"noop_with_empty_axes": noop}, opset=opset)


# int32 is left out of the log reductions: their empty result is -inf, which int32 lacks
# (ONNX leaves that case undefined).
EMPTY_CASES = [pytest.param(op, dt, id=f"{op}-{dt.__name__}") for op in REDUCE
               for dt in (np.float32, np.int32)
               if not (dt == np.int32 and op in ("ReduceLogSum", "ReduceLogSumExp"))]


@pytest.mark.parametrize("op,dtype", EMPTY_CASES)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # "mean of empty slice" in onnx.reference
def test_reduce_over_empty_axis(op, dtype):
    # The result is the reduction's identity: 0, 1, -inf / +inf or the integer extremes, NaN.
    _, fn, opset, _ = REDUCE[op]
    x = np.zeros((2, 0, 3), dtype)
    for axes in ([1], [0, 1]):
        check(fn, op, [x, np.array(axes, np.int64)], {"keepdims": 0}, opset=opset,
              oracle=oracle_for(op, np.dtype(dtype)))


def test_reduce_max_min_bool():
    x = rand(np.random.default_rng(31), (3, 4), bool, 0, 1)
    for fn, op in [(red.reduce_max_18, "ReduceMax"), (red.reduce_min_18, "ReduceMin")]:
        check(fn, op, [x, np.array([1], np.int64)], opset=20)
        check(fn, op, [np.zeros((3, 0), bool), np.array([1], np.int64)], opset=20)


def test_reduce_scalar_input():
    x = np.asarray(np.float32(2.5))
    check(red.reduce_sum_13, "ReduceSum", [x], {"keepdims": 1}, opset=13)
    check(red.reduce_l2_1, "ReduceL2", [x], {"keepdims": 0}, opset=13)


def test_reduce_log_sum_exp_is_stable():
    x = np.array([[1000.0, 999.0, -np.inf], [-1000.0, -1001.0, -1002.0]], np.float32)
    out = red.reduce_log_sum_exp_18(x, np.array([1], np.int64), keepdims=0)
    assert np.isfinite(out).all(), out
    check(red.reduce_log_sum_exp_18, "ReduceLogSumExp", [x, np.array([1], np.int64)], opset=18)


def test_reduce_sum_integers_keep_their_type():
    # numpy sums int32 into int64 unless told otherwise; ONNX keeps T.
    x = np.full((4, 3), 2**30, np.int32)
    check(red.reduce_sum_13, "ReduceSum", [x, np.array([0], np.int64)], opset=13)


@pytest.mark.parametrize("axes", [[3], [-4], [1, 1], [0, -3]], ids=str)
def test_reduce_rejects_bad_axes(axes):
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="ReduceSum"):
        red.reduce_sum_13(x, np.array(axes, np.int64))
    with pytest.raises(ValueError, match="ReduceMean"):
        red.reduce_mean_1(x, axes=axes)


# --------------------------------------------------------------------------------------------
# ArgMax / ArgMin

ARG = {"ArgMax": red.arg_max, "ArgMin": red.arg_min}


def arg_cases() -> list:
    # 11: no select_last_index yet; 12: every type; 13: adds bfloat16.
    at12 = schema_types("ArgMax", 12)
    pairs = [(11, np.dtype(np.float32)), (11, np.dtype(np.int32))] + [(12, d) for d in at12]
    pairs += [(13, d) for d in schema_types("ArgMax", 13) if d not in at12]
    return [pytest.param(opset, dtype, id=f"{opset}-{dtype}") for opset, dtype in pairs]


@pytest.mark.parametrize("op", list(ARG))
@pytest.mark.parametrize("opset,dtype", arg_cases())
@pytest.mark.parametrize("keepdims", [0, 1])
def test_arg(op, opset, dtype, keepdims):
    # Few distinct values, so ties are frequent and the first/last choice matters.
    x = rand(np.random.default_rng(32), (3, 4, 5), dtype, 0, 3)
    if dtype.kind not in "iu":
        x = x.astype(np.float32).round().astype(dtype)
    last_flags = [0, 1] if opset >= 12 else [None]
    for axis in (None, 0, 1, 2, -1, -3):
        for last in last_flags:
            attrs = {"keepdims": keepdims}
            if axis is not None:
                attrs["axis"] = axis
            if last is not None:
                attrs["select_last_index"] = last
            check(ARG[op], op, [x], attrs, opset=opset)


@pytest.mark.parametrize("op", list(ARG))
def test_arg_errors(op):
    with pytest.raises(ValueError, match="axis"):
        ARG[op](np.ones((2, 3), np.float32), axis=2)
    with pytest.raises(ValueError, match="empty"):
        ARG[op](np.ones((2, 0), np.float32), axis=1)
