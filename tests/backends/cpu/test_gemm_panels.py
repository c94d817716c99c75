"""The generated panel GEMM (``codegen/gemm_ir.py``) behind ``PackedGemm``, against
onnx.reference's Gemm: shapes that cross every blocking edge (K blocks of 256, panels of two
vectors, row blocks of the micro-kernel and their tails), bias, activations, transposed
weights, one thread and two."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import assert_close, reference

from pyflame_rt.backends.cpu import threads
from pyflame_rt.backends.cpu.codegen import gemm_ir, par
from pyflame_rt.backends.cpu.codegen.activations import act_params
from pyflame_rt.backends.cpu.codegen.gemm import PackedGemm

RNG = np.random.default_rng(5)

pytestmark = pytest.mark.skipif(
    not par.available() or gemm_ir.gemm_kernel() is None,
    reason="the generated GEMM needs x86-64 with AVX2+FMA or AVX-512 (and numba's BLAS)")


def _expected(a, b, bias, trans_b):
    inputs = [a, b] + ([bias] if bias is not None else [])
    return reference("Gemm", inputs, {"transB": int(trans_b)})[0]


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("rows,k,n", [(1, 7, 5), (5, 1, 33), (12, 192, 64), (13, 300, 31),
                                      (37, 600, 100), (200, 96, 200), (256, 257, 96),
                                      (24, 512, 32)])
def test_panel_gemm_shapes(rows, k, n, nthreads):
    a = RNG.standard_normal((rows, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    bias = RNG.standard_normal(n).astype(np.float32)
    packed = PackedGemm(b, bias, rows=rows)
    assert packed.panels is not None  # the generated kernel, not OpenBLAS
    with threads.thread_limit(nthreads):
        got = packed(a)
    assert_close(got, _expected(a, b, bias, False), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_panel_gemm_transposed_and_without_bias(trans_b, with_bias):
    rows, k, n = 29, 70, 45
    a = RNG.standard_normal((rows, k)).astype(np.float32)
    b = RNG.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    bias = RNG.standard_normal(n).astype(np.float32) if with_bias else None
    packed = PackedGemm(b, bias, trans_b=trans_b, rows=rows)
    assert packed.panels is not None
    with threads.thread_limit(2):
        got = packed(a)
    assert_close(got, _expected(a, b, bias, trans_b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["Relu", "Gelu", "LeakyRelu"])
def test_panel_gemm_activation(activation):
    rows, k, n = 50, 40, 70
    a = RNG.standard_normal((rows, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    bias = RNG.standard_normal(n).astype(np.float32)
    code, a0, a1 = act_params(activation, [0.2] if activation == "LeakyRelu" else None)
    packed = PackedGemm(b, bias, code, a0, a1, rows=rows)
    assert packed.panels is not None
    with threads.thread_limit(2):
        got = packed(a)
    y = _expected(a, b, bias, False).astype(np.float64)
    if activation == "Relu":
        expected = np.maximum(y, 0)
    elif activation == "LeakyRelu":
        expected = np.where(y >= 0, y, 0.2 * y)
    else:
        expected = reference("Gelu", [y.astype(np.float32)], {}, opset=20)[0]
    assert_close(got, expected.astype(np.float32), rtol=1e-4, atol=1e-4)


def test_other_row_counts_than_planned_and_big_shapes_keep_blas():
    k, n = 64, 48
    b = RNG.standard_normal((k, n)).astype(np.float32)
    packed = PackedGemm(b, None, rows=16)
    a = RNG.standard_normal((300, k)).astype(np.float32)  # more rows than planned: still right
    with threads.thread_limit(2):
        assert_close(packed(a), _expected(a, b, None, False), rtol=1e-4, atol=1e-4)
    big = PackedGemm(b, None, rows=1024)
    assert big.panels is None  # large M: OpenBLAS wins
    a = RNG.standard_normal((1024, k)).astype(np.float32)
    assert_close(big(a), _expected(a, b, None, False), rtol=1e-4, atol=1e-4)
    assert big.panels is None
    lazy = PackedGemm(b, None)  # rows unknown at plan time: packed on the first small call
    assert lazy.panels is None
    a = RNG.standard_normal((7, k)).astype(np.float32)
    assert_close(lazy(a), _expected(a, b, None, False), rtol=1e-4, atol=1e-4)
    assert lazy.panels is not None
    huge = PackedGemm(RNG.standard_normal((1100, 1000)).astype(np.float32), None, rows=8)
    assert huge.panels is None  # big weights: no second copy


def test_pack_b_layout():
    b = np.arange(5 * 37, dtype=np.float32).reshape(5, 37)
    p = gemm_ir.pack_b(b, 16)
    assert p.shape == (3, 5, 16) and p.ctypes.data % 64 == 0
    assert np.array_equal(p[1], b[:, 16:32])
    assert np.array_equal(p[2, :, :5], b[:, 32:]) and not p[2, :, 5:].any()
    assert np.array_equal(gemm_ir.pack_b(b.T.copy(), 16, trans_b=True), p)


def test_panel_gemm_strided_rows():
    k, n = 40, 50
    b = RNG.standard_normal((k, n)).astype(np.float32)
    packed = PackedGemm(b, None, rows=6)
    wide = RNG.standard_normal((6, 2 * k)).astype(np.float32)
    with threads.thread_limit(1):
        first = packed(np.ascontiguousarray(wide[:, :k]))
        strided = packed(wide[:, k:])  # same rows, another stride
    assert_close(first, _expected(np.ascontiguousarray(wide[:, :k]), b, None, False),
                 rtol=1e-4, atol=1e-4)
    assert_close(strided, _expected(np.ascontiguousarray(wide[:, k:]), b, None, False),
                 rtol=1e-4, atol=1e-4)
