"""Pooling kernels against onnx.reference and ONNX Runtime.

Where the two oracles disagree we use the one that follows the spec and say why:
onnx.reference ignores dilations when computing SAME/VALID pads and mis-scales LpPool windows
cut by ceil_mode; ONNX Runtime pads SAME for the undilated kernel. Cases with auto_pad and
dilations are therefore checked against an oracle run with the explicit pads the spec gives.
"""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from oracle import assert_close, check_kernel, onnxruntime, reference

from pyflame_rt.backends.cpu.pooling import (
    average_pool,
    global_average_pool,
    global_lp_pool,
    global_max_pool,
    lp_pool,
    max_pool,
    max_unpool,
)
from pyflame_rt.ops import KernelContext, lookup

F32_TOL = {"rtol": 1e-4, "atol": 1e-5}
FNS = {"MaxPool": max_pool, "AveragePool": average_pool, "LpPool": lp_pool}


def _ctx(noutputs: int) -> KernelContext:
    return KernelContext(node=None, noutputs=noutputs, opset=21)


def _check_ort(fn, op_type, inputs, attrs, *, noutputs=1, opset=21, **tol):
    expected = onnxruntime(op_type, inputs, attrs, noutputs=noutputs, opset=opset)
    got = fn(*inputs, **attrs, _ctx=_ctx(noutputs)) if noutputs > 1 else fn(*inputs, **attrs)
    got = got if isinstance(got, tuple) else (got,)
    for g, e in zip(got, expected):
        assert_close(g, e, **(tol or F32_TOL))


def test_registered_versions():
    for opset in (7, 8, 10, 11, 12, 19, 22):
        assert lookup("MaxPool", opset=opset).fn is max_pool
        assert lookup("AveragePool", opset=opset).fn is average_pool
        assert lookup("LpPool", opset=opset).fn is lp_pool
    assert lookup("GlobalAveragePool", opset=22).fn is global_average_pool
    assert lookup("GlobalMaxPool", opset=22).fn is global_max_pool
    assert lookup("GlobalLpPool", opset=22).fn is global_lp_pool
    assert lookup("MaxUnpool", opset=11).fn is max_unpool


# Explicit-pad grid: kernel, strides, pads (incl. asymmetric), dilations, ceil_mode.
GRID_2D = [
    dict(kernel_shape=k, strides=s, pads=p, ceil_mode=c, **({"dilations": d} if d else {}))
    for k, s, p, d, c in itertools.product(
        [[3, 3], [2, 3]], [[2, 2], [1, 2]], [[0, 0, 0, 0], [1, 0, 1, 1], [1, 1, 1, 1]],
        [None, [2, 1]], [0, 1])
]


@pytest.mark.parametrize("attrs", GRID_2D)
def test_max_pool_2d(attrs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    check_kernel(max_pool, "MaxPool", [x], attrs, opset=12)
    check_kernel(max_pool, "MaxPool", [x], attrs, noutputs=2, opset=12, _ctx=_ctx(2))


@pytest.mark.parametrize("attrs", GRID_2D)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_2d(attrs, count_include_pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    check_kernel(average_pool, "AveragePool", [x],
                 {**attrs, "count_include_pad": count_include_pad}, opset=19, **F32_TOL)


@pytest.mark.parametrize("attrs", GRID_2D)
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_2d(attrs, p):
    # onnx.reference scales windows cut by ceil_mode wrongly; ONNX Runtime sums the elements.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    _check_ort(lp_pool, "LpPool", [x], {**attrs, "p": p}, opset=18)
    if not attrs["ceil_mode"]:
        check_kernel(lp_pool, "LpPool", [x], {**attrs, "p": p}, opset=18, **F32_TOL)


AUTO_PAD_CASES = [
    {"auto_pad": a, "kernel_shape": k, "strides": s}
    for a, k, s in itertools.product(["SAME_UPPER", "SAME_LOWER", "VALID"], [[3, 3], [2, 3]],
                                     [[2, 2], [1, 2], [3, 1]])
]


@pytest.mark.parametrize("attrs", AUTO_PAD_CASES)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_auto_pad_against_onnxruntime(op, attrs):
    # (onnx.reference gets SAME_LOWER MaxPool wrong, so ONNX Runtime is the oracle here.)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 7, 6)).astype(np.float32)
    extra = {"count_include_pad": 1} if op == "AveragePool" else {}
    _check_ort(FNS[op], op, [x], {**attrs, **extra})
    if op == "AveragePool":
        _check_ort(FNS[op], op, [x], attrs)


def _spec_pads(auto_pad, in_shape, kernel, strides, dilations):
    begin, end = [], []
    for n, k, s, d in zip(in_shape, kernel, strides, dilations):
        if auto_pad == "VALID":
            begin.append(0)
            end.append(0)
            continue
        out = -(-n // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
        b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        begin.append(b)
        end.append(total - b)
    return begin + end


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("strides", [[2, 2], [1, 2], [3, 1]])
def test_auto_pad_with_dilations_uses_dilated_kernel(op, auto_pad, strides):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 7, 6)).astype(np.float32)
    kernel, dilations = [3, 2], [2, 2]
    pads = _spec_pads(auto_pad, x.shape[2:], kernel, strides, dilations)
    extra = {"count_include_pad": 1} if op == "AveragePool" else {}
    explicit = {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
                "pads": pads, **extra}
    expected = onnxruntime(op, [x], explicit, opset=19)[0]
    got = FNS[op](x, auto_pad=auto_pad, kernel_shape=kernel, strides=strides,
                  dilations=dilations, **extra)
    assert_close(got, expected, **F32_TOL)
    if auto_pad != "VALID":
        assert got.shape[2:] == tuple(-(-n // s) for n, s in zip(x.shape[2:], strides))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3], "strides": [2]},
    {"kernel_shape": [3], "strides": [2], "pads": [1, 2], "ceil_mode": 1},
    {"kernel_shape": [2], "dilations": [3], "pads": [1, 0]},
    {"kernel_shape": [4], "auto_pad": "SAME_LOWER", "strides": [3]},
])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_pool_1d(op, attrs):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 11)).astype(np.float32)
    _check_ort(FNS[op], op, [x], attrs)
    if op == "MaxPool":
        _check_ort(max_pool, op, [x], attrs, noutputs=2)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]},
    {"kernel_shape": [3, 2, 2], "strides": [1, 2, 1], "pads": [1, 0, 1, 1, 1, 0]},
    {"kernel_shape": [2, 2, 3], "strides": [2, 1, 2], "ceil_mode": 1},
    {"kernel_shape": [2, 2, 2], "dilations": [2, 1, 2]},
    {"kernel_shape": [3, 3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2, 2]},
])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_pool_3d(op, attrs):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 5, 4, 6)).astype(np.float32)
    _check_ort(FNS[op], op, [x], attrs)
    if op == "MaxPool":
        _check_ort(max_pool, op, [x], attrs, noutputs=2)
    if op == "AveragePool":
        _check_ort(average_pool, op, [x], {**attrs, "count_include_pad": 1})


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape,attrs", [
    ((2, 2, 5, 4), {"kernel_shape": [2, 2], "strides": [2, 1], "pads": [1, 1, 0, 1]}),
    ((2, 2, 4, 4, 3), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 1]}),
    ((1, 3, 6, 5), {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1,
                    "dilations": [1, 2]}),
])
def test_max_pool_indices_storage_order(shape, attrs, storage_order):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    _check_ort(max_pool, "MaxPool", [x], {**attrs, "storage_order": storage_order},
               noutputs=2, opset=12)
    check_kernel(max_pool, "MaxPool", [x], {**attrs, "storage_order": storage_order},
                 noutputs=2, opset=12, _ctx=_ctx(2))


def test_max_pool_omitted_indices_output():
    # A node with outputs ["Y", ""] asks for two outputs but uses only Y.
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    ctx = KernelContext(node=None, noutputs=2, opset=12, output_present=[True, False])
    got = max_pool(x, kernel_shape=[2, 2], strides=[2, 2], _ctx=ctx)
    expected = reference("MaxPool", [x], {"kernel_shape": [2, 2], "strides": [2, 2]},
                         opset=12)[0]
    assert isinstance(got, np.ndarray)
    assert_close(got, expected)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_int8(dtype):
    rng = np.random.default_rng(8)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (1, 2, 6, 5)).astype(dtype)
    x[0, 0, 0, 0] = info.min  # a window whose max is the dtype minimum
    x[0, 0, 0, 1] = info.min
    x[0, 0, 1, 0] = info.min
    x[0, 0, 1, 1] = info.min
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]}
    check_kernel(max_pool, "MaxPool", [x], attrs, opset=12)
    _check_ort(max_pool, "MaxPool", [x], attrs, noutputs=2, opset=12)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_pool_dtypes(op, dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 6, 7)).astype(dtype)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 0]}
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == np.float16 else {"rtol": 1e-10,
                                                                    "atol": 1e-12}
    check_kernel(FNS[op], op, [x], attrs, opset=19 if op == "AveragePool" else 18, **tol)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_pool_bfloat16_matches_float32_reference(op):
    bf = np.dtype(ml_dtypes.bfloat16)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 2, 6, 6)).astype(bf)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    expected = reference(op, [x.astype(np.float32)], attrs, opset=18)[0]
    got = FNS[op](x, **attrs)
    assert got.dtype == bf
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("opset", [7, 8, 10, 11])
def test_older_opsets(opset):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    _check_ort(max_pool, "MaxPool", [x], attrs, opset=opset)
    _check_ort(average_pool, "AveragePool", [x], {**attrs, "count_include_pad": 1},
               opset=opset)
    _check_ort(lp_pool, "LpPool", [x], {**attrs, "p": 3}, opset=opset)
    if opset >= 8:
        _check_ort(max_pool, "MaxPool", [x], attrs, noutputs=2, opset=opset)


def test_pool_errors():
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="kernel_shape"):
        max_pool(x)
    with pytest.raises(ValueError, match="does not fit"):
        average_pool(x, kernel_shape=[5, 5])
    with pytest.raises(ValueError, match="spatial"):
        max_pool(np.ones((1, 4), np.float32), kernel_shape=[2])
    with pytest.raises(ValueError, match="p must be positive"):
        lp_pool(x, kernel_shape=[2, 2], p=0)


def test_pools_do_not_modify_input():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    x0 = x.copy()
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    max_pool(x, **attrs)
    max_pool(x, **attrs, _ctx=_ctx(2))
    average_pool(x, **attrs)
    lp_pool(x, **attrs)
    np.testing.assert_array_equal(x, x0)


# ------------------------------------------------------------------------------ Global pools

@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 7), (1, 2, 3, 2, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_global_pools(shape, dtype):
    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape).astype(dtype)
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == np.float16 else F32_TOL
    check_kernel(global_average_pool, "GlobalAveragePool", [x], opset=22, **tol)
    # onnx.reference's GlobalMaxPool reduces the wrong axes unless there are 2 spatial axes;
    # MaxPool over the whole spatial extent is the spec's equivalent and works for any rank.
    if len(shape) == 4:
        check_kernel(global_max_pool, "GlobalMaxPool", [x], opset=22, **tol)
    expected = reference("MaxPool", [x], {"kernel_shape": list(shape[2:])}, opset=12)[0]
    assert_close(global_max_pool(x), expected, **tol)
    # onnx.reference has no GlobalLpPool: the spec defines it as LpPool over the whole spatial
    # extent, so the reference LpPool is the oracle (ONNX Runtime only handles 4-D inputs).
    for p in (1, 2, 3):
        expected = reference("LpPool", [x], {"kernel_shape": list(shape[2:]), "p": p},
                             opset=18)[0]
        assert_close(global_lp_pool(x, p=p), expected, **tol)
    if len(shape) == 4 and dtype == np.float32:
        _check_ort(global_lp_pool, "GlobalLpPool", [x], {}, opset=2)
        _check_ort(global_lp_pool, "GlobalLpPool", [x], {"p": 3}, opset=21)


# ---------------------------------------------------------------------------------- MaxUnpool

@pytest.mark.parametrize("shape,attrs", [
    ((1, 2, 4, 4), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((2, 2, 5, 4), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 0]}),
    ((1, 2, 8), {"kernel_shape": [2], "strides": [2]}),
    ((1, 1, 4, 4, 4), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}),
])
def test_max_unpool_roundtrip(shape, attrs):
    rng = np.random.default_rng(14)
    x = rng.standard_normal(shape).astype(np.float32)
    y, idx = max_pool(x, **attrs, _ctx=_ctx(2))
    for opset in (9, 11):
        check_kernel(max_unpool, "MaxUnpool", [y, idx], attrs, opset=opset)


def test_max_unpool_output_shape():
    # The ONNX backend test data: indices address the default-shaped result, which sits at the
    # start of the larger output_shape.
    x = np.array([[[[5, 6], [7, 8]]]], np.float32)
    idx = np.array([[[[5, 7], [13, 15]]]], np.int64)
    out_shape = np.array([1, 1, 5, 5], np.int64)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    check_kernel(max_unpool, "MaxUnpool", [x, idx, out_shape], attrs, opset=11)
    got = max_unpool(x, idx, out_shape, **attrs)
    assert got[0, 0, 1, 1] == 5 and got[0, 0, 3, 3] == 8 and got.sum() == 26


def test_max_unpool_errors():
    x = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="indices"):
        max_unpool(x, np.full((1, 1, 2, 2), 99, np.int64), kernel_shape=[2, 2], strides=[2, 2])
    with pytest.raises(ValueError, match="kernel_shape"):
        max_unpool(x, np.zeros((1, 1, 2, 2), np.int64))


# The float32 1-D/2-D pools run a numba kernel over planes split across the session's
# threads; these odd windows (ceil_mode overhangs, dilations, pads on one side, count_include
# _pad) check it against the reference on one thread and two.
FAST_CASES = [
    ((2, 3, 11, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 10, 7), {"kernel_shape": [3, 2], "strides": [2, 3], "ceil_mode": 1}),
    ((1, 2, 9, 9), {"kernel_shape": [2, 3], "dilations": [2, 2], "pads": [0, 2, 1, 0]}),
    ((1, 5, 7, 7), {"kernel_shape": [7, 7]}),
    ((3, 2, 6, 13), {"kernel_shape": [1, 4], "strides": [1, 1], "pads": [0, 0, 0, 3]}),
]


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("case", range(len(FAST_CASES)))
def test_float32_fast_pools(case, count_include_pad, nthreads):
    from pyflame_rt.backends.cpu import threads

    shape, attrs = FAST_CASES[case]
    x = np.random.default_rng(case).standard_normal(shape).astype(np.float32)
    avg_attrs = {**attrs, "count_include_pad": count_include_pad}
    with threads.thread_limit(nthreads):
        got_max = max_pool(x, **attrs)
        got_avg = average_pool(x, **avg_attrs)
    assert_close(got_max, reference("MaxPool", [x], attrs)[0])
    assert_close(got_avg, reference("AveragePool", [x], avg_attrs, opset=19)[0],
                 rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", [{"kernel_shape": [3], "strides": [2], "pads": [1, 0]},
                                   {"kernel_shape": [2], "dilations": [3], "ceil_mode": 1}])
def test_float32_fast_pools_1d(attrs):
    x = np.random.default_rng(1).standard_normal((2, 3, 14)).astype(np.float32)
    assert_close(max_pool(x, **attrs), reference("MaxPool", [x], attrs)[0])
    assert_close(average_pool(x, **attrs), reference("AveragePool", [x], attrs, opset=19)[0],
                 rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 2, 1, 5), (1, 2, 5, 1), (2, 3, 2, 2),
                                   (1, 4, 14, 14), (1, 2, 7, 9), (1, 2, 20, 17), (2, 2, 3, 33),
                                   (1, 1, 40, 24)])
def test_float32_max_pool_3x3_same_planes(shape):
    # 3x3 / stride 1 / pad 1 has its own kernel for rows wider than 16 (separable maxima,
    # edges fixed up); narrower ones take the vector rows.
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1]}
    assert_close(max_pool(x, **attrs), reference("MaxPool", [x], attrs)[0])


# The numba pools compute each output row in 8-lane vectors (tails masked), with kernels of
# their own for 3x3 max and 2x2 windows at column stride 1 or 2, a generic vector path for
# other windows at stride <= 2, and a scalar path for larger column strides; unpadded windows
# read the input in place except on the last planes. Rows of 1..25 outputs cover full vectors,
# tails and both together.
VECTOR_CASES = [
    ((1, 3, 17, 33), {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ((1, 3, 17, 34), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((2, 2, 9, 25), {"kernel_shape": [3, 3], "strides": [1, 1]}),
    ((1, 5, 14, 14), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ((1, 5, 15, 15), {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 3, 12, 19), {"kernel_shape": [2, 2], "strides": [1, 1], "pads": [1, 0, 0, 1]}),
    ((1, 3, 13, 40), {"kernel_shape": [2, 3], "strides": [1, 2], "pads": [0, 1, 1, 1]}),
    ((1, 4, 11, 29), {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 1, 1]}),
    ((2, 3, 8, 31), {"kernel_shape": [3, 2], "strides": [2, 4], "ceil_mode": 1}),
    ((1, 2, 3, 3), {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ((1, 2, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 2]}),
    # Padded max pools of planes at least 32 wide go separably, straight from the input.
    ((1, 3, 9, 40), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((2, 2, 7, 33), {"kernel_shape": [2, 3], "strides": [1, 2], "pads": [1, 1, 0, 2],
                     "ceil_mode": 1}),
    ((1, 2, 10, 35), {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [2, 1, 2, 1],
                      "dilations": [2, 1]}),
    ((1, 2, 6, 64), {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [0, 1, 0, 1]}),
]


@pytest.mark.parametrize("case", range(len(VECTOR_CASES)))
def test_float32_vector_pool_paths(case):
    shape, attrs = VECTOR_CASES[case]
    x = np.random.default_rng(20 + case).standard_normal(shape).astype(np.float32)
    for count_include_pad in (0, 1):
        avg_attrs = {**attrs, "count_include_pad": count_include_pad}
        assert_close(average_pool(x, **avg_attrs),
                     reference("AveragePool", [x], avg_attrs, opset=19)[0], rtol=1e-5,
                     atol=1e-6)
    # onnx.reference's MaxPool misreads asymmetric pads such as [0, 1, 0, 1] (it pads the
    # height): ONNX Runtime is the oracle for max.
    expected = onnxruntime("MaxPool", [x], attrs, opset=21)[0]
    assert_close(max_pool(x, **attrs), expected)
    # The same pools on a view of a bigger buffer: the in-place reads stay inside the planes.
    big = np.full((shape[0] * shape[1] * shape[2] * shape[3] + 5,), 1e30, np.float32)
    xv = big[:x.size].reshape(shape)
    xv[...] = x
    assert_close(max_pool(xv, **attrs), expected)


@pytest.mark.parametrize("shape", [(1, 1280, 7, 7), (3, 5, 13, 13), (2, 3, 1, 1), (1, 2, 17),
                                   (1, 2, 2, 3, 5), (2, 2, 64, 65)])
def test_float32_global_average_pool(shape):
    # Planes up to 4096 elements sum in vectors; bigger ones take numpy's pairwise sums.
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    got = global_average_pool(x)
    assert got.dtype == np.float32 and got.shape == shape[:2] + (1,) * (len(shape) - 2)
    expected = x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True)
    assert_close(got, expected.astype(np.float32), rtol=1e-5, atol=1e-6)
    check_kernel(global_average_pool, "GlobalAveragePool", [x], opset=22, rtol=1e-5,
                 atol=1e-6)

