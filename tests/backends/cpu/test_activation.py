"""Activation and Softmax-family kernels against ``onnx.reference``, per registered version,
dtype and attribute value."""

from __future__ import annotations

import numpy as np
import onnx.defs
import pytest
from oracle import (
    BF16,
    assert_close,
    check_kernel,
    dtype_tolerance,
    onnxruntime,
    random_array,
    type_params,
)

from pyflame_rt.backends.cpu import activation as act
from pyflame_rt.ops import lookup


def rand(rng: np.random.Generator, shape, dtype, low: float = -4.0, high: float = 4.0):
    return random_array(rng, shape, dtype, low, high)


def tol(dtype) -> dict:
    # Multi-step formulas round once here (computed in float32) but at every step in the
    # reference, so narrow floats differ by a few units in the last place.
    return dtype_tolerance(dtype, 4e-2, 5e-3, (1e-5, 1e-6))


def check_ort(fn, op: str, inputs: list, attrs: dict | None = None, *, opset: int,
              **kw) -> None:
    """Compare with ONNX Runtime (for versions ``onnx.reference`` does not implement)."""
    assert lookup(op, opset=opset).fn is fn, f"{op}-{opset} resolves to another kernel"
    expected = onnxruntime(op, inputs, attrs, opset=opset)[0]
    assert_close(fn(*inputs, **(attrs or {})), expected, **kw)


def check(fn, op: str, inputs: list, attrs: dict | None = None, *, opset: int, **kw) -> None:
    """``check_kernel``, plus: ``fn`` is what the registry picks at ``opset``, inputs untouched."""
    assert lookup(op, opset=opset).fn is fn, f"{op}-{opset} resolves to another kernel"
    copies = [np.array(x, copy=True) for x in inputs]
    check_kernel(fn, op, inputs, attrs, opset=opset, **kw)
    for before, after in zip(copies, inputs):
        assert before.tobytes() == after.tobytes(), f"{op} modified an input"


# --------------------------------------------------------------------------------------------
# Elementwise activations: (op, kernel, first version, attribute sets)

ELEMENTWISE = [
    ("Relu", act.relu, 6, [{}]),
    ("LeakyRelu", act.leaky_relu, 6, [{}, {"alpha": 0.2}]),
    ("Elu", act.elu, 6, [{}, {"alpha": 0.5}]),
    ("Selu", act.selu, 6, [{}, {"alpha": 1.5, "gamma": 2.0}]),
    ("Celu", act.celu, 12, [{}, {"alpha": 2.0}]),
    ("Sigmoid", act.sigmoid, 6, [{}]),
    ("HardSigmoid", act.hard_sigmoid, 6, [{}, {"alpha": 0.3, "beta": 0.4}]),
    ("HardSwish", act.hard_swish, 14, [{}]),
    ("Tanh", act.tanh, 6, [{}]),
    ("Softplus", act.softplus, 1, [{}]),
    ("Softsign", act.softsign, 1, [{}]),
    ("ThresholdedRelu", act.thresholded_relu, 10, [{}, {"alpha": 0.5}]),
    ("Shrink", act.shrink, 9, [{}, {"bias": 0.7, "lambd": 1.5}]),
    ("Gelu", act.gelu, 20, [{}, {"approximate": "none"}, {"approximate": "tanh"}]),
    ("Mish", act.mish, 18, [{}]),
]
if "Swish" in {s.name for s in onnx.defs.get_all_schemas()}:  # defined from ONNX 1.19
    ELEMENTWISE.append(("Swish", act.swish, 24, [{}, {"alpha": 0.5}]))

ELEMENTWISE_CASES = [
    pytest.param(fn, op, opset, dtype, attrs, id=f"{op}-{opset}-{dtype}-{attrs}")
    for op, fn, first, attr_sets in ELEMENTWISE
    for opset, dtype in (p.values for p in type_params(op, first))
    for attrs in attr_sets
]


@pytest.mark.parametrize("fn,op,opset,dtype,attrs", ELEMENTWISE_CASES)
def test_elementwise(fn, op, opset, dtype, attrs):
    rng = np.random.default_rng(20)
    low, high = (-9, 9) if dtype.kind in "iu" else (-4, 4)
    x = rand(rng, (3, 7), dtype, low, high)
    check(fn, op, [x], attrs, opset=opset, **tol(dtype))


@pytest.mark.parametrize("fn,op,opset", [
    (act.sigmoid, "Sigmoid", 13), (act.softplus, "Softplus", 22), (act.mish, "Mish", 22),
    (act.elu, "Elu", 22), (act.selu, "Selu", 22), (act.celu, "Celu", 12),
    (act.gelu, "Gelu", 20), (act.tanh, "Tanh", 13)])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow warnings inside onnx.reference
def test_large_inputs_do_not_overflow(fn, op, opset):
    x = np.array([-1000.0, -90.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 90.0, 1000.0], np.float32)
    out = fn(x)
    assert np.isfinite(out).all(), f"{op} gave {out}"
    check(fn, op, [x], opset=opset)


# --------------------------------------------------------------------------------------------
# PRelu: slope broadcasts unidirectionally to X


@pytest.mark.parametrize("opset,dtype", type_params("PRelu", 7))
@pytest.mark.parametrize("slope_shape", [(), (1,), (4,), (3, 1), (2, 3, 4)], ids=str)
def test_prelu(opset, dtype, slope_shape):
    rng = np.random.default_rng(21)
    low, high = (-9, 9) if dtype.kind in "iu" else (-4, 4)
    x = rand(rng, (2, 3, 4), dtype, low, high)
    slope = rand(rng, slope_shape, dtype, 0, 3)
    check(act.prelu, "PRelu", [x, slope], opset=opset, **tol(dtype))


@pytest.mark.parametrize("slope_shape", [(5,), (2, 2, 3, 4)])
def test_prelu_rejects_slope_that_does_not_broadcast_to_x(slope_shape):
    with pytest.raises(ValueError, match="slope"):
        act.prelu(np.ones((2, 3, 4), np.float32), np.ones(slope_shape, np.float32))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        act.gelu(np.ones(3, np.float32), approximate="fast")


# --------------------------------------------------------------------------------------------
# Softmax / LogSoftmax / Hardmax: 2-D coercion before opset 13, one axis from 13 on.
# onnx.reference implements only the opset-13 semantics (it ignores the coercion), so the
# older versions are checked against ONNX Runtime, which implements them.

SOFTMAX = {
    "Softmax": (act.softmax_1, act.softmax_13),
    "LogSoftmax": (act.log_softmax_1, act.log_softmax_13),
    "Hardmax": (act.hardmax_1, act.hardmax_13),
}
AXES = [None, 0, 1, 2, -1, -3]


@pytest.mark.parametrize("op", list(SOFTMAX))
@pytest.mark.parametrize("opset", [7, 11, 13])
@pytest.mark.parametrize("axis", AXES, ids=str)
def test_softmax_family_float32(op, opset, axis):
    fn = SOFTMAX[op][opset >= 13]
    x = rand(np.random.default_rng(22), (2, 3, 4), np.float32)
    if op == "Hardmax":
        x = x.round()  # ties: the first maximum must win
    attrs = {} if axis is None else {"axis": axis}
    (check if opset >= 13 else check_ort)(fn, op, [x], attrs, opset=opset)


@pytest.mark.parametrize("op", list(SOFTMAX))
@pytest.mark.parametrize("opset,dtype", [(11, np.float16), (11, np.float64), (13, np.float16),
                                          (13, np.float64), (13, BF16)], ids=str)
def test_softmax_family_dtypes(op, opset, dtype):
    fn = SOFTMAX[op][opset >= 13]
    x = rand(np.random.default_rng(23), (3, 5), dtype)
    # On 2-D input with axis=1 the coercion changes nothing, so the reference applies.
    check(fn, op, [x], {"axis": 1}, opset=opset, **tol(dtype))


def test_softmax_versions_differ_on_3d_input():
    # Guards the registration: Softmax-11 normalizes over dims 1.. together, Softmax-13 over one.
    x = rand(np.random.default_rng(24), (2, 3, 4), np.float32)
    assert not np.allclose(act.softmax_1(x, axis=1), act.softmax_13(x, axis=1))
    assert_close(act.softmax_1(x, axis=1).sum(axis=(1, 2)), np.ones(2, np.float32))
    assert_close(act.softmax_13(x, axis=1).sum(axis=1), np.ones((2, 4), np.float32))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_is_stable_for_large_inputs(op):
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]], np.float32)
    out = SOFTMAX[op][1](x)
    assert np.isfinite(out).all()
    check(SOFTMAX[op][1], op, [x], opset=13)


@pytest.mark.parametrize("op", list(SOFTMAX))
def test_softmax_family_rejects_bad_axis(op):
    x = np.ones((2, 3), np.float32)
    for fn in SOFTMAX[op]:
        with pytest.raises(ValueError, match="axis"):
            fn(x, axis=2)


@pytest.mark.parametrize("op", list(SOFTMAX))
def test_softmax_family_empty_input(op):
    x = np.zeros((0, 4), np.float32)
    for fn in SOFTMAX[op]:
        out = fn(x, axis=1)
        assert out.shape == (0, 4) and out.dtype == np.float32
