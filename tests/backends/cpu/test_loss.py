"""Loss kernels (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss) against onnx.reference."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.loss import negative_log_likelihood_loss, softmax_cross_entropy_loss
from pyflame_rt.ops import KernelContext, lookup

BF16 = np.dtype(ml_dtypes.bfloat16)

# (input shape, reduction, weighted, ignore_index, label dtype)
CASES = {
    "NC_none": ((3, 5), "none", False, None, np.int64),
    "NC_mean": ((3, 5), "mean", False, None, np.int64),
    "NC_sum_weight": ((3, 5), "sum", True, None, np.int32),
    "NC_mean_weight_ii": ((4, 5), "mean", True, 0, np.int64),
    "NCd1_mean_ii": ((3, 5, 2), "mean", False, 1, np.int64),
    "NCd1_mean_weight_negative_ii": ((3, 5, 6), "mean", True, -1, np.int64),
    "NCd1d2_none_weight": ((3, 5, 6, 6), "none", True, None, np.int32),
    "NCd1d2d3_none_negative_ii": ((3, 5, 6, 6, 5), "none", False, -5, np.int64),
    "NC_sum_weight_high_ii": ((3, 5), "sum", True, 10, np.int64),
    "NCd1d2d3d4d5_mean_weight": ((2, 5, 3, 2, 2, 3, 2), "mean", True, None, np.int64),
}


def _inputs(shape, weighted, ignore_index, label_dtype, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    labels = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    if ignore_index is not None:
        labels[rng.random(labels.shape) < 0.3] = ignore_index
    labels = labels.astype(label_dtype)
    weight = rng.random(shape[1]).astype(dtype) if weighted else None
    return x, labels, weight


def _attrs(reduction, ignore_index):
    attrs = {"reduction": reduction}
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    return attrs


def test_registered_versions():
    for opset in (12, 13, 22):
        assert lookup("NegativeLogLikelihoodLoss", opset=opset).fn is \
            negative_log_likelihood_loss
    for opset in (12, 13):
        assert lookup("SoftmaxCrossEntropyLoss", opset=opset).fn is softmax_cross_entropy_loss


@pytest.mark.parametrize("case", sorted(CASES))
def test_nll_loss(case):
    shape, reduction, weighted, ii, ldt = CASES[case]
    x, labels, weight = _inputs(shape, weighted, ii, ldt)
    check_kernel(negative_log_likelihood_loss, "NegativeLogLikelihoodLoss", [x, labels, weight],
                 _attrs(reduction, ii), opset=22, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_softmax_cross_entropy_loss_with_log_prob(case):
    shape, reduction, weighted, ii, ldt = CASES[case]
    x, labels, weight = _inputs(shape, weighted, ii, ldt, seed=1)
    ctx = KernelContext(node=None, noutputs=2, opset=13, output_present=[True, True])
    check_kernel(softmax_cross_entropy_loss, "SoftmaxCrossEntropyLoss", [x, labels, weight],
                 _attrs(reduction, ii), noutputs=2, opset=13, rtol=1e-5, atol=1e-6, _ctx=ctx)


def test_softmax_cross_entropy_loss_single_output():
    x, labels, weight = _inputs((4, 3, 2), True, None, np.int64, seed=2)
    check_kernel(softmax_cross_entropy_loss, "SoftmaxCrossEntropyLoss", [x, labels, weight],
                 {}, opset=13, rtol=1e-5, atol=1e-6)
    # Asked for two outputs with the second omitted: no log_prob is returned.
    ctx = KernelContext(node=None, noutputs=2, opset=13, output_present=[True, False])
    loss, log_prob = softmax_cross_entropy_loss(x, labels, weight, _ctx=ctx)
    assert loss.shape == () and log_prob is None


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_loss_dtypes(dtype, reduction):
    x, labels, weight = _inputs((4, 5, 3), True, 2, np.int64, dtype=dtype, seed=3)
    tol = {"rtol": 1e-3, "atol": 1e-3} if dtype == np.float16 else {"rtol": 1e-12, "atol": 1e-12}
    attrs = _attrs(reduction, 2)
    check_kernel(negative_log_likelihood_loss, "NegativeLogLikelihoodLoss", [x, labels, weight],
                 attrs, opset=13, **tol)
    check_kernel(softmax_cross_entropy_loss, "SoftmaxCrossEntropyLoss", [x, labels, weight],
                 attrs, opset=13, **tol)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_loss_bfloat16_against_onnxruntime_float32(reduction):
    # Neither oracle runs bfloat16 losses; compare with the float32 result rounded to bfloat16.
    x, labels, weight = _inputs((4, 5, 3), True, 1, np.int64, seed=4)
    attrs = _attrs(reduction, 1)
    for op, fn in (("NegativeLogLikelihoodLoss", negative_log_likelihood_loss),
                   ("SoftmaxCrossEntropyLoss", softmax_cross_entropy_loss)):
        expected = onnxruntime(op, [x, labels, weight], attrs, opset=13)[0]
        got = fn(x.astype(BF16), labels, weight.astype(BF16), **attrs)
        assert got.dtype == BF16
        assert_close(got.astype(np.float32), expected, rtol=2 ** -6, atol=1e-2)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_loss_all_ignored_mean_is_nan_like_reference():
    x, labels, _ = _inputs((3, 4), False, None, np.int64, seed=5)
    labels[:] = 7
    attrs = {"reduction": "mean", "ignore_index": 7}
    expected = reference("NegativeLogLikelihoodLoss", [x, labels], attrs, opset=22)[0]
    got = negative_log_likelihood_loss(x, labels, **attrs)
    assert np.isnan(got)
    assert_close(got, expected)


def test_loss_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="target values"):
        negative_log_likelihood_loss(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="target shape"):
        negative_log_likelihood_loss(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy_loss(x, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="class weights"):
        negative_log_likelihood_loss(x, np.array([0, 1]), np.ones(2, np.float32))
