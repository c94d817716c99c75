"""Normalization kernels against onnx.reference and ONNX Runtime."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.normalization import (
    batch_normalization_7,
    batch_normalization_9,
    batch_normalization_14,
    group_normalization_18,
    group_normalization_21,
    instance_normalization,
    layer_normalization,
    lp_normalization,
    lrn,
    mean_variance_normalization,
    rms_normalization,
)
from pyflame_rt.ops import KernelContext, lookup

F32_TOL = {"rtol": 1e-4, "atol": 1e-5}
F16_TOL = {"rtol": 1e-2, "atol": 1e-2}
TOL = {np.float32: F32_TOL, np.float64: {"rtol": 1e-10, "atol": 1e-10}, np.float16: F16_TOL}
BF16 = np.dtype(ml_dtypes.bfloat16)


def _ctx(noutputs: int) -> KernelContext:
    return KernelContext(node=None, noutputs=noutputs, opset=21)


def _ort_outputs(op_type, inputs, attrs, *, noutputs=1, opset=21):
    return onnxruntime(op_type, inputs, attrs, noutputs=noutputs, opset=opset)


def test_registered_versions():
    assert lookup("BatchNormalization", opset=7).fn is batch_normalization_7
    assert lookup("BatchNormalization", opset=9).fn is batch_normalization_9
    assert lookup("BatchNormalization", opset=13).fn is batch_normalization_9
    assert lookup("BatchNormalization", opset=15).fn is batch_normalization_14
    assert lookup("InstanceNormalization", opset=22).fn is instance_normalization
    assert lookup("LayerNormalization", opset=17).fn is layer_normalization
    assert lookup("GroupNormalization", opset=18).fn is group_normalization_18
    assert lookup("GroupNormalization", opset=21).fn is group_normalization_21
    assert lookup("LRN", opset=13).fn is lrn
    assert lookup("MeanVarianceNormalization", opset=13).fn is mean_variance_normalization
    assert lookup("RMSNormalization", opset=23).fn is rms_normalization
    assert lookup("LpNormalization", opset=22).fn is lp_normalization


# --------------------------------------------------------------------------- BatchNormalization

def _bn_inputs(rng, shape, dtype=np.float32, pdtype=None):
    pdtype = pdtype or dtype
    c = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    scale, bias, mean = (rng.standard_normal(c).astype(pdtype) for _ in range(3))
    var = (rng.random(c) + 0.5).astype(pdtype)
    return [x, scale, bias, mean, var]


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_batch_norm_inference(shape, dtype):
    rng = np.random.default_rng(0)
    inputs = _bn_inputs(rng, shape, dtype)
    # epsilon = 2^-10 is exact in the float32 attribute, so float64 results can match tightly.
    attrs = {"epsilon": 2.0 ** -10}
    for opset in (14, 15):
        check_kernel(batch_normalization_14, "BatchNormalization", inputs, attrs, opset=opset,
                     **TOL[dtype])
    # onnx.reference's opset-9 BatchNormalization blends in batch statistics whenever momentum
    # is set (it always is, by default), so ONNX Runtime is the oracle for opsets 7 to 13.
    for fn, opset in ((batch_normalization_7, 7), (batch_normalization_9, 9),
                      (batch_normalization_9, 13)):
        expected = _ort_outputs("BatchNormalization", inputs, attrs, opset=opset)[0]
        assert_close(fn(*inputs, **attrs), expected, **(F16_TOL if dtype == np.float16
                                                        else F32_TOL))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 3)])
def test_batch_norm_7_inference_against_onnxruntime(shape):
    # onnx.reference runs opset-7 BatchNormalization in training mode (it looks for is_test),
    # so ONNX Runtime is the oracle for the inference path.
    rng = np.random.default_rng(1)
    inputs = _bn_inputs(rng, shape)
    expected = _ort_outputs("BatchNormalization", inputs, {"epsilon": 1e-4}, opset=7)[0]
    assert_close(batch_normalization_7(*inputs, epsilon=1e-4), expected, **F32_TOL)


def test_batch_norm_7_spatial_0_per_activation():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    scale, bias, mean = (rng.standard_normal((2, 4)).astype(np.float32) for _ in range(3))
    var = (rng.random((2, 4)) + 0.5).astype(np.float32)
    # Per-activation statistics == the spec's advice: flatten to (N, C*D) and use spatial BN.
    flat = [x.reshape(3, 8), *(p.reshape(8) for p in (scale, bias, mean, var))]
    expected = reference("BatchNormalization", flat, opset=15)[0].reshape(x.shape)
    got = batch_normalization_7(x, scale, bias, mean, var, spatial=0)
    assert_close(got, expected, **F32_TOL)


@pytest.mark.parametrize("fn,opset", [(batch_normalization_7, 7), (batch_normalization_9, 9)])
def test_batch_norm_7_9_training_outputs_match_onnxruntime(fn, opset):
    rng = np.random.default_rng(3)
    inputs = _bn_inputs(rng, (4, 3, 2, 3))
    attrs = {"epsilon": 1e-3, "momentum": 0.8}
    expected = _ort_outputs("BatchNormalization", inputs, attrs, noutputs=5, opset=opset)
    got = fn(*inputs, **attrs, _ctx=_ctx(5))
    assert len(got) == 5
    for g, e in zip(got, expected):
        assert_close(g, e, **F32_TOL)
    three = fn(*inputs, **attrs, _ctx=_ctx(3))
    assert len(three) == 3
    assert_close(three[2], expected[2], **F32_TOL)


def test_batch_norm_9_omitted_extra_outputs_is_inference():
    # Outputs ["Y", "", "", "", ""]: nothing but Y is used, so this is inference.
    rng = np.random.default_rng(30)
    inputs = _bn_inputs(rng, (2, 3, 4))
    ctx = KernelContext(node=None, noutputs=5, opset=9, output_present=[True] + [False] * 4)
    got = batch_normalization_9(*inputs, _ctx=ctx)
    expected = _ort_outputs("BatchNormalization", inputs, {}, opset=9)[0]
    assert isinstance(got, np.ndarray)
    assert_close(got, expected, **F32_TOL)


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (5, 2), (3, 2, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_14_training(shape, dtype):
    rng = np.random.default_rng(4)
    inputs = _bn_inputs(rng, shape, dtype)
    attrs = {"epsilon": 2.0 ** -7, "momentum": 0.75, "training_mode": 1}
    for opset in (14, 15):
        check_kernel(batch_normalization_14, "BatchNormalization", inputs, attrs, noutputs=3,
                     opset=opset, _ctx=_ctx(3), **TOL[dtype])
    expected = _ort_outputs("BatchNormalization", inputs, attrs, noutputs=3, opset=15)
    got = batch_normalization_14(*inputs, **attrs, _ctx=_ctx(3))
    for g, e in zip(got, expected):
        assert_close(g, e, **TOL[dtype] if dtype == np.float32 else F32_TOL)
    y_only = batch_normalization_14(*inputs, **attrs, _ctx=_ctx(1))
    assert_close(y_only, expected[0], **F32_TOL)


def test_batch_norm_15_mixed_types():
    # Opset 15 lets X, scale/B and mean/var have different float types.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4)).astype(np.float16)
    scale, bias = (rng.standard_normal(3).astype(np.float32) for _ in range(2))
    mean = rng.standard_normal(3).astype(np.float64)
    var = (rng.random(3) + 0.5).astype(np.float64)
    inputs = [x, scale, bias, mean, var]
    check_kernel(batch_normalization_14, "BatchNormalization", inputs, opset=15, **F16_TOL)
    y, rm, rv = batch_normalization_14(*inputs, training_mode=1, _ctx=_ctx(3))
    assert (y.dtype, rm.dtype, rv.dtype) == (np.float16, np.float64, np.float64)
    xs = x.astype(np.float64)
    np.testing.assert_allclose(rm, 0.9 * mean + 0.1 * xs.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(rv, 0.9 * var + 0.1 * xs.var(axis=(0, 2)), rtol=1e-6)


def test_batch_norm_bfloat16_matches_float32_reference():
    rng = np.random.default_rng(6)
    inputs = [a.astype(BF16) for a in _bn_inputs(rng, (2, 3, 4))]
    expected = reference("BatchNormalization", [a.astype(np.float32) for a in inputs],
                         opset=15)[0]
    got = batch_normalization_14(*inputs)
    assert got.dtype == BF16
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=3e-2, atol=3e-2)


def test_batch_norm_does_not_modify_inputs():
    rng = np.random.default_rng(7)
    inputs = _bn_inputs(rng, (2, 3, 4))
    before = [a.copy() for a in inputs]
    batch_normalization_14(*inputs)
    batch_normalization_14(*inputs, training_mode=1, _ctx=_ctx(3))
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- InstanceNormalization

@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_instance_norm(shape, dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    scale, bias = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    for opset in (6, 22):
        check_kernel(instance_normalization, "InstanceNormalization", [x, scale, bias],
                     {"epsilon": 1e-3}, opset=opset, **TOL[dtype])


# ------------------------------------------------------------------------- LayerNormalization

@pytest.mark.parametrize("shape,axis", [((2, 3, 8), -1), ((2, 3, 8), 1), ((4, 6), 0),
                                        ((2, 3, 4, 5), -2), ((2, 3, 4, 5), 2)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(shape, axis, with_bias):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    norm_shape = shape[axis % len(shape):]
    scale = rng.standard_normal(norm_shape).astype(np.float32)
    bias = rng.standard_normal(norm_shape).astype(np.float32) if with_bias else None
    attrs = {"axis": axis, "epsilon": 1e-3}
    check_kernel(layer_normalization, "LayerNormalization", [x, scale, bias], attrs,
                 opset=17, **F32_TOL)
    check_kernel(layer_normalization, "LayerNormalization", [x, scale, bias], attrs,
                 noutputs=3, opset=17, _ctx=_ctx(3), **F32_TOL)


def test_layer_norm_broadcast_scale():
    # Scale and B only need to be unidirectionally broadcastable to X.
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    scale = rng.standard_normal((1, 4)).astype(np.float32)
    bias = rng.standard_normal((4,)).astype(np.float32)
    check_kernel(layer_normalization, "LayerNormalization", [x, scale, bias], {"axis": 1},
                 opset=17, **F32_TOL)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_layer_norm_dtypes_stats_are_float32(dtype):
    # Mean and InvStdDev have type U (float32 for stash_type=1) whatever X's type is, as in
    # ONNX Runtime (onnx.reference returns them in X's type).
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 8)).astype(dtype)
    scale, bias = (rng.standard_normal(8).astype(dtype) for _ in range(2))
    expected = _ort_outputs("LayerNormalization", [x, scale, bias], {}, noutputs=3, opset=17)
    got = layer_normalization(x, scale, bias, _ctx=_ctx(3))
    tol = F16_TOL if dtype == np.float16 else F32_TOL
    for g, e in zip(got, expected):
        assert_close(g, e, **tol)
    check_kernel(layer_normalization, "LayerNormalization", [x, scale, bias], opset=17, **tol)


def test_layer_norm_errors():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="axis"):
        layer_normalization(x, np.ones(3, np.float32), axis=2)
    with pytest.raises(ValueError, match="stash_type"):
        layer_normalization(x, np.ones(3, np.float32), stash_type=6)


# ------------------------------------------------------------------------- GroupNormalization

@pytest.mark.parametrize("shape,groups", [((2, 6, 3), 3), ((2, 6, 4, 5), 2), ((1, 4, 3, 3), 4),
                                          ((2, 4, 5), 1), ((1, 6, 2, 2, 3), 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_21_per_channel(shape, groups, dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape).astype(dtype)
    scale, bias = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    check_kernel(group_normalization_21, "GroupNormalization", [x, scale, bias],
                 {"num_groups": groups, "epsilon": 1e-3}, opset=21,
                 **(F32_TOL if dtype == np.float32 else {"rtol": 1e-6, "atol": 1e-6}))


@pytest.mark.parametrize("shape,groups", [((2, 6, 3), 3), ((2, 6, 4, 5), 2), ((1, 4, 3, 3), 4)])
def test_group_norm_18_per_group(shape, groups):
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape).astype(np.float32)
    scale, bias = (rng.standard_normal(groups).astype(np.float32) for _ in range(2))
    check_kernel(group_normalization_18, "GroupNormalization", [x, scale, bias],
                 {"num_groups": groups, "epsilon": 1e-3}, opset=18, **F32_TOL)
    expected = _ort_outputs("GroupNormalization", [x, scale, bias],
                            {"num_groups": groups, "epsilon": 1e-3}, opset=18)[0]
    assert_close(group_normalization_18(x, scale, bias, num_groups=groups, epsilon=1e-3),
                 expected, **F32_TOL)


def test_group_norm_18_accepts_per_channel_parameters():
    # Exporters targeting the corrected (opset-21) meaning write per-channel scale/bias at 18.
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    scale, bias = (rng.standard_normal(6).astype(np.float32) for _ in range(2))
    expected = reference("GroupNormalization", [x, scale, bias], {"num_groups": 3}, opset=21)[0]
    assert_close(group_normalization_18(x, scale, bias, num_groups=3), expected, **F32_TOL)


def test_group_norm_float16_and_errors():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 4, 6)).astype(np.float16)
    scale, bias = (rng.standard_normal(4).astype(np.float16) for _ in range(2))
    check_kernel(group_normalization_21, "GroupNormalization", [x, scale, bias],
                 {"num_groups": 2}, opset=21, **F16_TOL)
    with pytest.raises(ValueError, match="divide"):
        group_normalization_21(x, scale, bias, num_groups=3)
    with pytest.raises(ValueError, match="num_groups"):
        group_normalization_21(x, scale, bias)
    with pytest.raises(ValueError, match="per channel"):
        group_normalization_21(x, scale[:2], bias[:2], num_groups=2)


# ----------------------------------------------------------------------------------------- LRN

@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 7, 2, 2), (2, 3, 4)])
def test_lrn_against_onnxruntime(size, shape):
    # onnx.reference's LRN loops over the batch axis instead of the channels; ONNX Runtime is
    # the oracle for odd sizes (it refuses even ones).
    rng = np.random.default_rng(16)
    x = rng.standard_normal(shape).astype(np.float32)
    attrs = {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 1.5}
    if len(shape) == 4:
        for opset in (1, 13):
            expected = _ort_outputs("LRN", [x], attrs, opset=opset)[0]
            assert_close(lrn(x, **attrs), expected, **F32_TOL)
    else:
        # ONNX Runtime only takes 4-D input: a trailing unit axis does not change the result.
        expected = _ort_outputs("LRN", [x[..., None]], attrs, opset=13)[0][..., 0]
        assert_close(lrn(x, **attrs), expected, **F32_TOL)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_lrn_reference_when_batch_equals_channels(size, dtype):
    # With N == C the reference's loop happens to visit every channel, so it is a valid oracle,
    # also for even sizes (window floor((size-1)/2) below, ceil((size-1)/2) above).
    rng = np.random.default_rng(17)
    x = rng.standard_normal((5, 5, 3, 3)).astype(dtype)
    # (alpha / size is a float32 quotient in the reference, so float64 agrees to ~1e-8.)
    tol = {"rtol": 1e-7, "atol": 1e-7} if dtype == np.float64 else TOL[dtype]
    check_kernel(lrn, "LRN", [x], {"size": size, "alpha": 0.5, "beta": 0.75}, opset=13, **tol)
    with pytest.raises(ValueError, match="size"):
        lrn(x)


# ------------------------------------------------------------------ MeanVarianceNormalization

@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3], [-1], [0, 1, 2, 3]])
def test_mvn(axes):
    rng = np.random.default_rng(18)
    x = (rng.standard_normal((2, 3, 4, 5)) * 3 + 1).astype(np.float32)
    attrs = {} if axes is None else {"axes": axes}
    for opset in (9, 13):
        check_kernel(mean_variance_normalization, "MeanVarianceNormalization", [x], attrs,
                     opset=opset, **F32_TOL)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_mvn_other_dtypes(dtype):
    # The ONNX function body adds a float32 epsilon to the data, so neither oracle runs float64
    # or float16: compare with the float32 reference on the same values.
    rng = np.random.default_rng(19)
    x = (rng.standard_normal((2, 3, 4, 5)) * 3 + 1).astype(dtype)
    expected = reference("MeanVarianceNormalization", [x.astype(np.float32)], opset=13)[0]
    got = mean_variance_normalization(x)
    assert got.dtype == dtype
    tol = F16_TOL if dtype == np.float16 else F32_TOL
    np.testing.assert_allclose(got.astype(np.float32), expected, **tol)


# ----------------------------------------------------------------------------- RMSNormalization

@pytest.mark.parametrize("shape,axis", [((2, 3, 8), -1), ((2, 3, 8), 1), ((4, 6), 0),
                                        ((2, 3, 4, 5), -2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_rms_norm(shape, axis, dtype):
    rng = np.random.default_rng(19)
    x = rng.standard_normal(shape).astype(dtype)
    scale = rng.standard_normal(shape[axis % len(shape):]).astype(dtype)
    check_kernel(rms_normalization, "RMSNormalization", [x, scale],
                 {"axis": axis, "epsilon": 1e-3}, opset=23, **TOL[dtype])


def test_rms_norm_output_has_scale_type():
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    scale = rng.standard_normal(8).astype(np.float16)
    got = rms_normalization(x, scale)
    assert got.dtype == np.float16
    expected = reference("RMSNormalization", [x, scale.astype(np.float32)], opset=23)[0]
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=1e-2, atol=1e-2)


# ------------------------------------------------------------------------------ LpNormalization

@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_lp_normalization(p, axis, dtype):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    attrs = {"p": p, "axis": axis}
    if p == 2:
        for opset in (1, 22):
            check_kernel(lp_normalization, "LpNormalization", [x], attrs, opset=opset,
                         **TOL[dtype])
    # onnx.reference computes the L1 norm as sum(x) without abs; ONNX Runtime sums |x|.
    expected = _ort_outputs("LpNormalization", [x], attrs, opset=22)[0]
    assert_close(lp_normalization(x, **attrs), expected,
                 **(F16_TOL if dtype == np.float16 else F32_TOL))


def test_lp_normalization_zero_norm_gives_zero():
    x = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]], np.float32)
    for p in (1, 2):
        expected = _ort_outputs("LpNormalization", [x], {"p": p}, opset=22)[0]
        assert_close(lp_normalization(x, p=p), expected)
        assert np.all(lp_normalization(x, p=p)[0] == 0)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        lp_normalization(x, p=3)


@pytest.mark.parametrize("op", ["LayerNormalization", "RMSNormalization", "GroupNormalization",
                                "InstanceNormalization", "LRN", "LpNormalization"])
def test_bfloat16_matches_float32_reference(op):
    # bfloat16 runs in float32 and is cast back; the oracle sees the same values in float32.
    rng = np.random.default_rng(40)
    x = rng.standard_normal((2, 4, 3, 3)).astype(BF16)
    scale = rng.standard_normal(4).astype(BF16)
    bias = rng.standard_normal(4).astype(BF16)
    cases = {
        "LayerNormalization": (layer_normalization, [x, x[0, 0, 0]], {}, 17),
        "RMSNormalization": (rms_normalization, [x, x[0, 0, 0]], {}, 23),
        "GroupNormalization": (group_normalization_21, [x, scale, bias], {"num_groups": 2}, 21),
        "InstanceNormalization": (instance_normalization, [x, scale, bias], {}, 22),
        "LRN": (lrn, [x], {"size": 3}, 13),
        "LpNormalization": (lp_normalization, [x], {"axis": 1}, 22),
    }
    fn, inputs, attrs, opset = cases[op]
    f32 = [a.astype(np.float32) for a in inputs]
    if op == "LRN":
        expected = _ort_outputs(op, f32, attrs, opset=opset)[0]
    else:
        expected = reference(op, f32, attrs, opset=opset)[0]
    got = fn(*inputs, **attrs)
    assert got.dtype == BF16
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=3e-2, atol=3e-2)
